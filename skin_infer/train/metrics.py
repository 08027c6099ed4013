"""Validation metrics per head (scikit-learn), plus ordinal-aware ones.

For ordinal heads: mean absolute error in grades, quadratic weighted kappa, and adjacent-tolerant recall: per
true grade, an exact prediction earns 1, a neighbouring grade 0.5, anything else 0; averaged over the grades
present (macro).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    confusion_matrix,
    f1_score,
    recall_score,
)

ADJACENT_CREDIT = 0.5


def head_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str], ordinal: bool) -> dict:
    classes = list(range(len(labels)))
    out = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)),
        "recall": dict(
            zip(
                labels,
                map(float, recall_score(y_true, y_pred, labels=classes, average=None, zero_division=0)),
                strict=True,
            )
        ),
        "confusion": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
    }
    if ordinal:
        distance = np.abs(y_true - y_pred)
        credit = np.where(distance == 0, 1.0, np.where(distance == 1, ADJACENT_CREDIT, 0.0))
        out["mae"] = float(distance.mean())
        out["adjacent_recall"] = float(np.mean([credit[y_true == c].mean() for c in np.unique(y_true)]))
        out["qwk"] = float(cohen_kappa_score(y_true, y_pred, labels=classes, weights="quadratic"))
    return out


def summarise(per_head: dict[str, dict], select_metric: str) -> dict:
    """Per-head metrics plus the top-level figures: each metric averaged over heads."""
    out = {"heads": per_head}
    for key in ("accuracy", "balanced_accuracy", "macro_f1"):
        out[key] = float(np.mean([m[key] for m in per_head.values()]))
    out["score"] = float(np.mean([m[select_metric] for m in per_head.values()]))
    return out
