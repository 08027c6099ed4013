"""The ``skin`` commands and the ``skin-infer`` shortcut, one module per command group.

Heavy imports happen inside the command that needs them, so `skin --help` and `skin-infer` start fast.
"""

from . import bench, experiments, export, models, serve, train, val
from .common import app
from .infer import infer_main

__all__ = ["app", "bench", "experiments", "export", "infer_main", "models", "serve", "train", "val"]
