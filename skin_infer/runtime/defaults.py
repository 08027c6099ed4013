"""What runs when the user names no model: ``$SKIN_INFER_MODEL``, else the bundles shipped in ``models/``."""

from __future__ import annotations

import os
from pathlib import Path

from .bundle import MANIFEST

DEFAULT_CLASSIFIER = "ham10000-mobilenetv2"  # folder under models/, installed as the skin_infer.models package
MODEL_ENV = "SKIN_INFER_MODEL"  # a bundle path to use instead, or "none"


def default_classifier() -> Path | None:
    """The classifier bundle used when no --model is given: $SKIN_INFER_MODEL, else the one shipped in models/."""
    chosen = os.environ.get(MODEL_ENV)
    if chosen:
        return None if chosen.lower() == "none" else Path(chosen)
    try:
        from importlib.resources import files

        bundle = Path(str(files("skin_infer.models") / DEFAULT_CLASSIFIER))
    except ModuleNotFoundError:
        return None
    return bundle if (bundle / MANIFEST).is_file() else None
