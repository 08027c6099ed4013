"""Face-parsing scores: the confusion matrix of label maps, per-class F1 and IoU, and the mean F1 over the face
parts. Shared by the parser trainer, its export gate and ``skin val --masks`` (torch-free: numpy only)."""

from __future__ import annotations

import numpy as np

# The face parts whose mean F1 is the headline (pairs merged: a part is one category whatever its side).
FACE_PARTS = {
    "skin": ("skin",),
    "nose": ("nose",),
    "eyes": ("l_eye", "r_eye"),
    "brows": ("l_brow", "r_brow"),
    "lips": ("u_lip", "l_lip"),
    "inner_mouth": ("mouth",),
    "hair": ("hair",),
    "ears": ("l_ear", "r_ear"),
    "neck": ("neck",),
}


def confusion(pred: np.ndarray, target: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(target.ravel().astype(np.int64) * n + pred.ravel(), minlength=n * n).reshape(n, n)


def parse_metrics(matrix: np.ndarray, labels: list[str] | tuple[str, ...]) -> dict:
    """Pixel accuracy, per-class F1 and IoU over the whole set, and the mean F1 over ``FACE_PARTS``."""
    matrix = matrix.astype(np.float64)

    def scores(ids: list[int]) -> tuple[float, float]:
        tp = matrix[np.ix_(ids, ids)].sum()
        fp, fn = matrix[:, ids].sum() - tp, matrix[ids, :].sum() - tp
        return (2 * tp / max(2 * tp + fp + fn, 1)), (tp / max(tp + fp + fn, 1))

    per_class = {}
    for i, name in enumerate(labels):
        if matrix[i].sum() or matrix[:, i].sum():
            f1, iou = scores([i])
            per_class[name] = {"f1": round(f1, 4), "iou": round(iou, 4), "pixels": int(matrix[i].sum())}
    parts = {
        name: round(scores([labels.index(n) for n in names])[0], 4)
        for name, names in FACE_PARTS.items()
        if all(n in labels for n in names)
    }
    return {
        "pixel_accuracy": round(float(np.trace(matrix) / max(matrix.sum(), 1)), 4),
        "mean_f1": round(float(np.mean(list(parts.values()))), 4),
        "part_f1": parts,
        "classes": per_class,
    }
