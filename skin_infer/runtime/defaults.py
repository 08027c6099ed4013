"""What runs when the user names no model: ``$SKIN_INFER_MODEL``, else the bundles shipped in ``models/``,
and the shipped YuNet detector and face parser behind ``--parser auto``."""

from __future__ import annotations

import os
from pathlib import Path

from .bundle import MANIFEST, sha256_file
from .errors import BundleError

DEFAULT_CLASSIFIERS = ("acne04-mobilenetv2", "ham10000-mobilenetv2")  # folders under models/: faces, dermoscopy
DOMAIN_MODEL = "domain-mobilenetv2"  # what a photo without a face shows (routing.py)
MODEL_ENV = "SKIN_INFER_MODEL"  # bundle paths to use instead (separated by the OS path separator), or "none"


def default_classifiers() -> list[Path]:
    """The classifier bundles used when no --model is given: $SKIN_INFER_MODEL, else the ones shipped in models/."""
    chosen = os.environ.get(MODEL_ENV)
    if chosen:
        return [] if chosen.lower() == "none" else [Path(p) for p in chosen.split(os.pathsep) if p]
    return [b for name in DEFAULT_CLASSIFIERS if (b := _shipped(name)) is not None and (b / MANIFEST).is_file()]


def default_domain_model() -> Path | None:
    bundle = _shipped(DOMAIN_MODEL)
    return bundle if bundle is not None and (bundle / MANIFEST).is_file() else None


DEFAULT_PARSER = "face-parser-mnv2"  # folder under models/: the face parser this project trained
SHIPPED_YUNET = ("yunet", "face_detection_yunet_2023mar.onnx")  # YuNet (OpenCV Zoo), with its licence file


def _shipped(*parts: str) -> Path | None:
    try:
        from importlib.resources import files

        path = Path(str(files("skin_infer.models").joinpath(*parts)))
    except ModuleNotFoundError:
        return None
    return path if path.exists() else None


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
