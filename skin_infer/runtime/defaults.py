"""The one model resolver: what a model spec ("default", "none", bundle folders) means, and where the models
shipped inside the package are: ``$SKIN_INFER_MODEL``, else the bundles shipped in ``models/``, and the shipped
YuNet detector and face parser behind ``--parser auto``.

The shipped models install as the package ``skin_infer.models``; in a source checkout they are the ``models/``
folder beside ``skin_infer/`` (a process that imports the checkout, such as a Ray worker started in the clone,
finds them there too). A default that resolves to nothing is an error that says how to fix the install.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .bundle import MANIFEST, sha256_file
from .errors import BundleError

# folders under models/: the acne grader and wrinkle detector for faces, the lesion model for dermoscopy
DEFAULT_MODELS = ("acne04-mobilenetv2", "wrinkles-centernet", "ham10000-mobilenetv2")
DOMAIN_MODEL = "domain-mobilenetv2"  # what a photo without a face shows (routing.py)
MODEL_ENV = "SKIN_INFER_MODEL"  # bundle paths to use instead (separated by the OS path separator), or "none"
REINSTALL = "pip install --force-reinstall skin-infer"


def shipped_root() -> Path | None:
    """The folder of the shipped models: the installed package ``skin_infer.models``, else a checkout's models/."""
    try:
        from importlib.resources import files

        root = Path(str(files("skin_infer.models")))
        if root.is_dir():
            return root
    except ModuleNotFoundError:
        pass
    checkout = Path(__file__).resolve().parents[2] / "models"
    return checkout if (checkout / "__init__.py").is_file() else None


def _shipped(*parts: str) -> Path | None:
    root = shipped_root()
    path = root.joinpath(*parts) if root is not None else None
    return path if path is not None and path.exists() else None


def _shipped_bundle(name: str) -> Path:
    bundle = _shipped(name)
    if bundle is None or not (bundle / MANIFEST).is_file():
        where = shipped_root() or "skin_infer.models (not installed)"
        raise BundleError(f"the shipped model {name} is missing from {where}; reinstall skin-infer ({REINSTALL}).")
    return bundle


def default_models() -> list[Path]:
    """The bundles used when no --model is given: $SKIN_INFER_MODEL, else the ones shipped in models/."""
    chosen = os.environ.get(MODEL_ENV)
    if chosen:
        return [] if chosen.lower() == "none" else [Path(p) for p in chosen.split(os.pathsep) if p]
    return [_shipped_bundle(name) for name in DEFAULT_MODELS]


def resolve_models(spec: str | Path | Iterable[str | Path] | None) -> list[Path]:
    """A model spec as every caller takes it -> the classifier and detector bundle folders, absolute, in order.

    ``"default"`` is the shipped models (or ``$SKIN_INFER_MODEL``), ``"none"``/``None`` no model; anything else
    a bundle folder. A spec naming models that are not there is an error, never an empty list."""
    entries = [spec] if spec is None or isinstance(spec, (str, Path)) else list(spec)
    bundles: list[Path] = []
    for entry in entries:
        if entry is None or str(entry).lower() == "none":
            continue
        found = default_models() if str(entry).lower() == "default" else [Path(entry)]
        for bundle in found:
            if not bundle.exists():
                raise BundleError(f"{bundle}: --model does not exist; give a bundle folder made by `skin export`.")
            bundles.append(bundle.resolve())
    return bundles


def default_domain_model() -> Path:
    return _shipped_bundle(DOMAIN_MODEL)


# What ships inside the package, for `skin models list`: folder -> (role, licence; the model cards say more).
SHIPPED = {
    "yunet": ("face detector", "MIT / Apache-2.0 (OpenCV Zoo)"),
    "face-parser-mnv2": ("face parser", "CelebAMask-HQ: non-commercial research"),
    "acne04-mobilenetv2": ("acne grader (faces)", "ACNE04: academic / non-commercial"),
    "wrinkles-centernet": ("wrinkle detector (faces)", "research / non-commercial (web-sourced photos)"),
    "ham10000-mobilenetv2": ("lesion classifier (dermoscopy)", "CC BY-NC-SA 4.0 (HAM10000)"),
    "domain-mobilenetv2": ("domain model (photos without a face)", "CC BY-NC-SA 4.0 and the data's terms"),
}


def shipped_models() -> list[dict]:
    """Each shipped model: name, role, licence, path, size and sha256 of its model file (a missing one says so)."""
    rows = []
    for name, (role, licence) in SHIPPED.items():
        folder = _shipped(name)
        model = None
        if folder is not None:
            model = folder / SHIPPED_YUNET[1] if name == "yunet" else folder / "model.onnx"
        present = model is not None and model.is_file()
        rows.append({
            "name": name, "role": role, "licence": licence, "path": str(folder) if folder else None,
            "size": model.stat().st_size if present else None, "sha256": sha256_file(model) if present else None,
        })  # fmt: skip
    return rows


DEFAULT_PARSER = "face-parser-mnv2"  # folder under models/: the face parser this project trained
SHIPPED_YUNET = ("yunet", "face_detection_yunet_2023mar.onnx")  # YuNet (OpenCV Zoo), with its licence file


def default_parser() -> Path | None:
    """The face-parser bundle `--parser auto` uses: the one shipped in models/ (None if it is not installed)."""
    bundle = _shipped(DEFAULT_PARSER)
    return bundle if bundle is not None and (bundle / MANIFEST).is_file() else None


def yunet_file() -> Path | None:
    """The YuNet detector: the copy shipped inside the package, else one pulled into the cache."""
    from .downloads import REGISTRY, cached_path

    shipped = _shipped(*SHIPPED_YUNET)
    if shipped is not None:
        if sha256_file(shipped) != REGISTRY["yunet"].sha256:  # 230 KB: hashing it costs well under 1 ms
            raise BundleError(f"{shipped}: the shipped YuNet file is damaged; reinstall skin-infer.")
        return shipped
    return cached_path("yunet")


def _digest(path: Path) -> str:
    """A bundle's identity is its manifest (which holds its files' checksums); a bare model file, its bytes."""
    return sha256_file(path / MANIFEST if path.is_dir() else path)


def run_identity(options) -> str:
    """What resume compares (``writers.py``): the models' checksums and every option that changes an answer,
    as a short digest; a file written under another identity is never continued."""
    import hashlib
    import json

    finder = Path(options.parser_model) if options.parser_model else None
    if finder is None and options.parser in ("auto", "segformer"):
        finder = default_parser()
    parts = {
        "models": [_digest(b) for b in resolve_models(options.model)],
        "parser": [options.parser, _digest(finder) if finder is not None and finder.exists() else None],
        "options": [options.light, options.min_skin, options.top_k],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def model_heads(spec) -> list[tuple[str, tuple[str, ...]]]:
    """(name, labels) of every head the models of ``spec`` answer, in output order, from their manifests (no
    model loaded: a Ray driver knows its output's columns before any worker starts)."""
    from .bundle import load_bundle

    manifests = [load_bundle(b, verify=False).manifest for b in resolve_models(spec)]
    return [(h["name"], tuple(str(v) for v in h["labels"])) for m in manifests for h in m.get("heads", [])]
