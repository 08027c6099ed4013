"""The bundle contract: a directory with ``model.onnx`` and ``manifest.json``.

The manifest is the single source of truth the runtime reads to run a graph; export writes it
(``write_manifest``) and the runtime checks it (``load_bundle``) against the files and the graph.

A bundle is a closed box: every path it names stays inside its folder (no ``..``, no absolute paths, no
symlink out), and the graph ONNX Runtime runs is built from the very bytes whose checksum was verified
(read once, hashed, handed over in memory), so nothing can be swapped between the check and the run, and
no file outside the checksums (ONNX external data) is ever loaded.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BundleError
from .files import atomic_write
from .preprocess import InputSpec

FORMAT = "skin-infer-bundle"
FORMAT_VERSION = 1
KINDS = ("classifier", "face-parser", "detector")
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
DIGEST = "manifest_sha256"  # the manifest's own checksum (manifest_digest)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_entries(directory: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """The ``files`` section of a manifest: sha256 and size of each named file."""
    return {
        name: {"sha256": sha256_file(directory / name), "size": (directory / name).stat().st_size} for name in names
    }


def manifest_digest(manifest: dict[str, Any]) -> str:
    """The sha256 of the manifest's own content (canonical JSON, without the digest itself): labels, heads, input,
    domain, thresholds and the files' checksums. A changed label order no longer matches it."""
    body = {k: v for k, v in manifest.items() if k != DIGEST}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def save_manifest(directory: Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest`` into the bundle with its digest (strict JSON: a NaN can never reach a manifest)."""
    manifest = {**{k: v for k, v in manifest.items() if k != DIGEST}}
    manifest[DIGEST] = manifest_digest(manifest)
    target = Path(directory) / MANIFEST
    try:
        text = json.dumps(manifest, indent=2, allow_nan=False)
    except ValueError:
        raise BundleError(f"{target}: a figure in the manifest is NaN or infinite; the export is broken.") from None
    atomic_write(target, text + "\n")
    return target


def write_manifest(directory: Path, manifest: dict[str, Any], files: list[str]) -> Path:
    """Complete ``manifest`` with format fields and checksums of ``files`` and write it into the bundle."""
    directory = Path(directory)
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest}
    manifest["files"] = file_entries(directory, files)
    return save_manifest(directory, manifest)


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict[str, Any]
    input_spec: InputSpec
    model_bytes: bytes | None = None  # the verified graph (None when loaded with verify=False)

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest.get("model", "model.onnx")

    @property
    def model(self) -> bytes | Path:
        """What a session is built from: the verified bytes, or the path when checksums were not verified."""
        return self.model_bytes if self.model_bytes is not None else self.model_path

    @property
    def model_sha256(self) -> str | None:
        """The sha256 of ``model`` as verified at load (None when checksums were not verified)."""
        return self.manifest["files"][self.model_path.name]["sha256"] if self.model_bytes is not None else None

    @property
    def name(self) -> str:
        return self.manifest.get("name", self.path.name)


def _require(manifest: dict[str, Any], key: str, where: Path) -> Any:
    if key not in manifest:
        raise BundleError(f"{where}: manifest has no '{key}' field; re-export the bundle with `skin export`.")
    return manifest[key]


def load_bundle(path: str | Path, kind: str | None = None, verify: bool = True) -> Bundle:
    """Read and validate a bundle directory (or its manifest.json); raise BundleError on any problem."""
    path = Path(path)
    if path.name == MANIFEST:
        path = path.parent
    manifest_path = path / MANIFEST
    if not path.is_dir():
        raise BundleError(f"{path}: not a bundle directory (expected a folder with {MANIFEST} and model.onnx).")
    if not manifest_path.is_file():
        raise BundleError(f"{path}: no {MANIFEST} in this folder; export the model with `skin export`.")
    if manifest_path.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError(
            f"{manifest_path}: {manifest_path.stat().st_size:,} bytes is not a manifest; re-export the bundle."
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{manifest_path}: not valid JSON ({exc}); re-export the bundle.") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{manifest_path}: not a skin-infer manifest (format must be '{FORMAT}').")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{manifest_path}: bundle format_version {version!r} is not supported by this skin-infer "
            f"(it reads version {FORMAT_VERSION}); upgrade skin-infer or re-export the bundle."
        )
    if DIGEST in manifest and manifest[DIGEST] != manifest_digest(manifest):
        raise BundleError(
            f"{manifest_path}: the manifest was changed after export (its content no longer matches its "
            f"{DIGEST}: labels, heads, input or thresholds edited); re-export the bundle or restore its manifest."
        )
    if DIGEST not in manifest:
        warnings.warn(
            f"{manifest_path}: no {DIGEST} (exported before skin-infer 0.2), so an edit of its labels would go "
            "unnoticed; re-export the bundle to protect it.",
            stacklevel=2,
        )
    found_kind = _require(manifest, "kind", manifest_path)
    if found_kind not in KINDS:
        raise BundleError(f"{manifest_path}: unknown kind {found_kind!r} (known: {', '.join(KINDS)}).")
    if kind is not None and found_kind != kind:
        raise BundleError(f"{path}: this is a {found_kind} bundle, but a {kind} bundle is needed here.")
    try:
        spec = InputSpec.from_manifest(_require(manifest, "input", manifest_path))
    except (ValueError, TypeError) as exc:
        raise BundleError(f"{manifest_path}: {exc}; re-export the bundle.") from None
    outputs = _require(manifest, "outputs", manifest_path)
    if not (isinstance(outputs, dict) and outputs and all(isinstance(v, str) for v in outputs.values())):
        raise BundleError(f"{manifest_path}: 'outputs' must map roles to graph output names; re-export the bundle.")
    files = _require(manifest, "files", manifest_path)
    if not isinstance(files, dict) or not all(isinstance(e, dict) for e in files.values()):
        raise BundleError(f"{manifest_path}: 'files' must map file names to their sha256 and size.")
    model_name = manifest.get("model", "model.onnx")
    if not isinstance(model_name, str):
        raise BundleError(f"{manifest_path}: 'model' must be a file name inside the bundle.")
    for name in [model_name, *files]:
        _inside(path, name, manifest_path)
    if model_name not in files:
        raise BundleError(f"{manifest_path}: the model file {model_name} is not listed in 'files'.")
    model_bytes = None
    if verify:
        for name, entry in files.items():
            file = path / name
            if not file.is_file():
                raise BundleError(f"{file}: listed in the manifest but missing; copy the whole bundle folder.")
            data = file.read_bytes() if entry.get("size") == file.stat().st_size else None
            if data is None or hashlib.sha256(data).hexdigest() != entry.get("sha256"):
                raise BundleError(
                    f"{file}: checksum mismatch with {MANIFEST} (the file was changed or damaged); "
                    "re-export or re-download the bundle."
                )
            if name == model_name:
                model_bytes = data
    return Bundle(path=path, manifest=manifest, input_spec=spec, model_bytes=model_bytes)


def _inside(bundle: Path, name: Any, manifest_path: Path) -> Path:
    """``bundle / name``, refusing anything that could leave the bundle's folder."""
    relative = Path(name) if isinstance(name, str) and name else None
    if relative is None or relative.is_absolute() or ".." in relative.parts:
        raise BundleError(
            f"{manifest_path}: file name {name!r} points outside the bundle; a bundle names only files in its folder."
        )
    target = (bundle / relative).resolve()
    if not target.is_relative_to(bundle.resolve()):
        raise BundleError(f"{manifest_path}: {name} is a symlink out of the bundle; copy the real file in instead.")
    return target
