"""The ``skin`` commands and the ``skin-infer`` shortcut, one module per command group.

Heavy imports happen inside the command that needs them, and the command groups load only for ``skin``:
``skin-infer`` (``console_main``, around ``infer_main``) imports the infer command alone, so it starts fast.
"""

from __future__ import annotations

import importlib

GROUPS = ("infer", "bench", "experiments", "export", "models", "serve", "train", "val")
__all__ = ["app", "console_main", "infer_main", *GROUPS]


def __getattr__(name: str):
    if name == "app":  # every group registers its commands on the shared app when imported
        for group in GROUPS:
            importlib.import_module(f"{__name__}.{group}")
        from .common import app

        return app
    if name in ("infer_main", "console_main"):
        from . import infer

        return getattr(infer, name)
    if name in GROUPS:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
