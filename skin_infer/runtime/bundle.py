"""The bundle contract: a directory with ``model.onnx`` and ``manifest.json``.

The manifest is the single source of truth the runtime reads to run a graph; export writes it
(``write_manifest``) and the runtime checks it (``load_bundle``) against the files and the graph.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BundleError
from .files import atomic_write
from .preprocess import InputSpec

FORMAT = "skin-infer-bundle"
FORMAT_VERSION = 1
KINDS = ("classifier", "face-parser")
MANIFEST = "manifest.json"


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


def write_manifest(directory: Path, manifest: dict[str, Any], files: list[str]) -> Path:
    """Complete ``manifest`` with format fields and checksums of ``files`` and write it into the bundle."""
    directory = Path(directory)
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, **manifest}
    manifest["files"] = file_entries(directory, files)
    target = directory / MANIFEST
    atomic_write(target, json.dumps(manifest, indent=2) + "\n")
    return target


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict[str, Any]
    input_spec: InputSpec

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest.get("model", "model.onnx")

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
    found_kind = _require(manifest, "kind", manifest_path)
    if found_kind not in KINDS:
        raise BundleError(f"{manifest_path}: unknown kind {found_kind!r} (known: {', '.join(KINDS)}).")
    if kind is not None and found_kind != kind:
        raise BundleError(f"{path}: this is a {found_kind} bundle, but a {kind} bundle is needed here.")
    try:
        spec = InputSpec.from_manifest(_require(manifest, "input", manifest_path))
    except (ValueError, TypeError) as exc:
        raise BundleError(f"{manifest_path}: {exc}; re-export the bundle.") from None
    _require(manifest, "outputs", manifest_path)
    files = _require(manifest, "files", manifest_path)
    bundle = Bundle(path=path, manifest=manifest, input_spec=spec)
    if bundle.model_path.name not in files:
        raise BundleError(f"{manifest_path}: the model file {bundle.model_path.name} is not listed in 'files'.")
    if verify:
        for name, entry in files.items():
            file = path / name
            if not file.is_file():
                raise BundleError(f"{file}: listed in the manifest but missing; copy the whole bundle folder.")
            if file.stat().st_size != entry.get("size") or sha256_file(file) != entry.get("sha256"):
                raise BundleError(
                    f"{file}: checksum mismatch with {MANIFEST} (the file was changed or damaged); "
                    "re-export or re-download the bundle."
                )
    return bundle
