"""What the face-parser and box-detector trainers share (``parsing.py``, ``detection.py``): the learning rate as a
function of the update count, the state ``--resume`` reads back, and the end of each epoch (best and last weights,
``state.pt``, ``log.csv``, the epoch callback). ``skin train``'s classifier loop (``engine.py``) uses timm's
scheduler instead.
"""

from __future__ import annotations

import json
import math

import torch
from safetensors.torch import load_file

from .engine import TrainError, save_state, save_weights, write_log


class EpochLoop:
    """Mixed into a trainer that has ``cfg`` (lr, warmup_epochs, epochs), ``out``, ``model``, ``optimizer``,
    ``steps_per_epoch``, ``epoch``, ``updates``, ``best_score``, ``best_epoch``, ``history`` and ``on_epoch``."""

    def _lr(self) -> float:
        """Linear warm-up, then cosine to 1% of the peak (a function of the update count: resume is exact)."""
        warm = self.cfg.warmup_epochs * self.steps_per_epoch
        total = self.cfg.epochs * self.steps_per_epoch
        if self.updates < warm:
            return self.cfg.lr * (0.01 + 0.99 * self.updates / warm)
        t = (self.updates - warm) / max(total - warm, 1)
        return self.cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))

    def _load_state(self) -> None:
        path = self.out / "state.pt"
        if not path.is_file():
            raise TrainError(f"{self.out}: no state.pt to resume from (the run stopped before its first epoch ended)")
        state = torch.load(path, weights_only=True)
        self.model.load_state_dict(load_file(str(self.out / "last.safetensors")))
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.updates = state["epoch"], state["updates"]
        self.best_score, self.best_epoch = state["best_score"], state["best_epoch"]
        self.history = json.loads(state["history"])

    def _end_epoch(self, row: dict, score: float) -> None:
        """Log ``row``; keep the weights as best when ``score`` is at least the best so far (a later tie wins)."""
        self.history.append(row)
        if score >= self.best_score:
            self.best_score, self.best_epoch = score, self.epoch
            save_weights(self.model, self.out / "best.safetensors")
        save_weights(self.model, self.out / "last.safetensors")
        state = {
            "optimizer": self.optimizer.state_dict(),
            "epoch": self.epoch,
            "updates": self.updates,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "history": json.dumps(self.history),
        }
        save_state(state, self.out / "state.pt")  # fmt: skip
        write_log(self.out / "log.csv", self.history)
        self.on_epoch(row)  # tracking and sweeps (tracking.py, sweep.py)
