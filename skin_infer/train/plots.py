"""Pictures of a run: confusion matrices and training curves (matplotlib, no display needed)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..runtime.files import atomic_write  # noqa: E402


def _save(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, buffer.getvalue())


def write_confusion(out: Path, split: str, head: str, labels: list[str], matrix: list[list[int]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["true \\ predicted", *labels])
    writer.writerows([label, *row] for label, row in zip(labels, matrix, strict=True))
    atomic_write(out / f"confusion_{split}_{head}.csv", buffer.getvalue())
    m = np.asarray(matrix, dtype=float)
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1 + 0.7 * len(labels), 1 + 0.6 * len(labels)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(
                j, i, int(m[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black", fontsize=8
            )
    ax.set_title(f"{head} — {split} (rows: recall)")
    _save(fig, out / f"confusion_{split}_{head}.png")


def write_curves(
    path: Path, history: list[dict], keys=("val_balanced_accuracy", "val_macro_f1", "val_accuracy")
) -> None:
    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    left.plot(epochs, [h["train_loss"] for h in history], marker="o")
    left.set_title("training loss")
    left.set_xlabel("epoch")
    for key in keys:
        right.plot(epochs, [h[key] for h in history], marker="o", label=key[4:])
    right.set_title("validation")
    right.set_xlabel("epoch")
    right.legend()
    _save(fig, path)
