"""``skin val``: the accuracy users get, measured on the path ``skin-infer`` runs (detection, parsing, routing,
the domain model, then the model), on a labelled CSV.

An image the product gives no answer for counts as wrong in ``accuracy`` and ``balanced_accuracy``; the
reasons are counted (``not_answered``). ``answered_accuracy`` is over the answered images only. Which region's
answer is the image's: a face model's answer on the largest face (``face_skin``), else the ``whole_image``
region's. With ``--boxes`` (detectors), every box the product reported against the human boxes: mAP50 per type
and count correlation (``detections.box_report``). Torch-free: numpy only.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .detections import Boxes, read_yolo
from .errors import SkinInferError
from .results import ImageResult

IMAGE_COLUMNS = ("file", "path", "image")
NOT_ANSWERED = "(not answered)"
DOMAIN_HEAD = "domain"


@dataclass(frozen=True)
class Sample:
    file: str
    truth: str


def read_labels(
    path: Path,
    label_column: str | None,
    image_column: str | None = None,
    root: Path | None = None,
    where: list[str] = (),
) -> list[Sample]:
    """The labelled images of a CSV; paths relative to the CSV's folder, or to ``root``; only the rows matching
    every ``COLUMN=VALUE`` of ``where``. Without ``label_column`` (boxes come from files), the truth is empty."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SkinInferError(f"{path}: cannot be read as a CSV ({exc}); give a UTF-8 CSV with a header row.") from None
    image_column = image_column or next((c for c in IMAGE_COLUMNS if c in columns), None)
    if image_column is None or image_column not in columns:
        raise SkinInferError(
            f"{path}: no image column ({', '.join(IMAGE_COLUMNS)}) among {columns}; name it with --image-column."
        )
    if label_column is not None and label_column not in columns:
        raise SkinInferError(f"{path}: no column {label_column!r} among {columns}; name it with --label-column.")
    for clause in where:
        column, sep, value = clause.partition("=")
        if not sep or column not in columns:
            raise SkinInferError(f"--where {clause!r}: write COLUMN=VALUE with a column of {path} ({columns}).")
        rows = [r for r in rows if r[column] == value]
    base = root if root is not None else path.parent
    samples = [
        Sample(str(base / r[image_column]), str(r[label_column]).strip() if label_column else "")
        for r in rows
        if r[image_column]
    ]
    if not samples:
        raise SkinInferError(f"{path}: no labelled images in it{' matching ' + ' and '.join(where) if where else ''}.")
    return samples


def _largest_face_first(result: ImageResult) -> list[int]:
    return sorted(range(len(result.faces)), key=lambda i: -result.faces[i].box[2] * result.faces[i].box[3])


def answer_of(result: ImageResult, head: str, model: str | None) -> tuple[str | None, str | None]:
    """(label, None) when the product answered ``head`` for this image, else (None, why not)."""
    if not result.ok:
        return None, "error"
    if head == DOMAIN_HEAD:  # the domain model answers for photos without a face
        if result.domain is None:
            return None, "face found"
        return (None, "below confidence") if result.domain.label == "unknown" else (result.domain.label, None)
    order = {face: rank for rank, face in enumerate(_largest_face_first(result))}
    answered = [r for r in result.regions if head in r.predictions]
    answered.sort(key=lambda r: (order.get(r.face_index, -1), r.name != "face_skin"))
    if answered:
        prediction = answered[0].predictions[head]
        return (None, "below confidence") if prediction.uncertain else (prediction.label, None)
    why = result.not_run.get(model or "", "")
    if "no face" in why:
        return None, "no face"
    if "too small" in why:
        return None, "face too small"
    if "no colour" in why:
        return None, "no colour"
    if why:
        return None, "routed away"
    if any(r.note and "too little skin" in r.note for r in result.regions):
        return None, "too little skin"
    return None, "no answer"


def quadratic_kappa(truth: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Cohen's kappa with quadratic weights for ordinal labels 0..k-1."""
    observed = np.zeros((k, k))
    np.add.at(observed, (truth, pred), 1)
    weights = (np.subtract.outer(np.arange(k), np.arange(k)) ** 2) / max(1, (k - 1) ** 2)
    expected = np.outer(observed.sum(1), observed.sum(0)) / max(1, observed.sum())
    denominator = (weights * expected).sum()
    return float(1 - (weights * observed).sum() / denominator) if denominator > 0 else 0.0


def evaluate(samples: list[Sample], answers: list[tuple[str | None, str | None]], labels: list[str],
             ordinal: bool) -> dict[str, Any]:  # fmt: skip
    """The report: counts, accuracies over all images and over the answered ones, per-class recall, macro F1,
    MAE and QWK for ordinal heads, and the confusion matrix (rows truth, columns prediction, then not answered)."""
    unknown = sorted({s.truth for s in samples} - set(labels))
    if unknown:
        raise SkinInferError(f"labels {unknown} are not among the head's labels {labels}; check --label-column.")
    n = len(samples)
    columns = [*labels, NOT_ANSWERED]
    confusion = np.zeros((len(labels), len(columns)), int)
    reasons: Counter = Counter()
    for sample, (label, why) in zip(samples, answers, strict=True):
        confusion[labels.index(sample.truth), columns.index(label if label is not None else NOT_ANSWERED)] += 1
        if label is None:
            reasons[why] += 1
    correct = np.diag(confusion[:, : len(labels)])
    per_class = confusion.sum(1)
    predicted = confusion[:, : len(labels)].sum(0)
    present = per_class > 0
    recall = np.divide(correct, per_class, out=np.zeros(len(labels)), where=present)
    precision = np.divide(correct, predicted, out=np.zeros(len(labels)), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(len(labels)),
                   where=(precision + recall) > 0)  # fmt: skip
    answered = n - sum(reasons.values())
    report: dict[str, Any] = {
        "n": n,
        "answered": answered,
        "not_answered": dict(sorted(reasons.items())),
        "accuracy": round(float(correct.sum() / n), 4),
        "balanced_accuracy": round(float(recall[present].mean()), 4),
        "answered_accuracy": round(float(correct.sum() / answered), 4) if answered else None,
        "macro_f1": round(float(f1[present | (predicted > 0)].mean()), 4),
        "recall": {label: round(float(r), 4) for label, r, p in zip(labels, recall, present, strict=True) if p},
    }
    if ordinal:
        pairs = np.array([(labels.index(s.truth), labels.index(a)) for s, (a, _) in zip(samples, answers,
                          strict=True) if a is not None], int).reshape(-1, 2)  # fmt: skip
        report["mae"] = round(float(np.abs(pairs[:, 0] - pairs[:, 1]).mean()), 4) if len(pairs) else None
        report["qwk"] = round(quadratic_kappa(pairs[:, 0], pairs[:, 1], len(labels)), 4) if len(pairs) else None
    report["labels"] = labels
    report["confusion"] = confusion.tolist()
    report["confusion_columns"] = columns
    return report


def found_boxes(result: ImageResult, classes: list[str]) -> tuple[Boxes, int]:
    """Every box the product reported for an image (all faces' and a close-up's, uncertain ones too: average
    precision ranks them by score), as ``Boxes`` in image pixels; and how many it counted (the confident ones)."""
    found = [w for r in result.regions if r.wrinkles for w in r.wrinkles if w.type in classes]
    counted = sum(not w.uncertain for w in found)
    if not found:
        return Boxes.empty(), 0
    xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in (f.box for f in found)], np.float64)
    return Boxes(np.array([classes.index(f.type) for f in found]), np.array([f.score for f in found]), xyxy), counted


def image_folder(folder: Path) -> list[Sample]:
    """The images of a folder (sorted), unlabelled: their truth comes from files beside them (boxes, masks)."""
    from .images import IMAGE_SUFFIXES

    found = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise SkinInferError(f"{folder}: no images in it ({', '.join(sorted(IMAGE_SUFFIXES))}).")
    return [Sample(str(p), "") for p in found]


def mask_truth(image: str, masks_dir: Path, result: ImageResult, n_labels: int) -> np.ndarray:
    """The label map of ``image``: ``masks_dir/<stem>.png`` (one channel of label ids), at the analysed image's
    size (nearest neighbour); ids the parser does not know count as background."""
    import cv2
    from PIL import Image, UnidentifiedImageError

    path = masks_dir / f"{Path(image).stem}.png"
    try:
        with Image.open(path) as mask:
            if mask.mode not in ("P", "L"):
                raise SkinInferError(
                    f"{path}: a label map has one channel of label ids (mode P or L), not {mask.mode}."
                )
            labels = np.asarray(mask)
    except FileNotFoundError:
        raise SkinInferError(f"{path}: no label map for {image}; every image needs one.") from None
    except (OSError, UnidentifiedImageError) as exc:
        raise SkinInferError(f"{path}: not a readable PNG ({exc}).") from None
    if result.ok and labels.shape != (result.height, result.width):
        labels = cv2.resize(labels, (result.width, result.height), interpolation=cv2.INTER_NEAREST)
    return np.where(labels < n_labels, labels, 0).astype(np.uint8)


def box_truth(image: str, boxes_dir: Path, result: ImageResult, classes: list[str]) -> Boxes:
    """The human boxes of ``image``: ``boxes_dir/<stem>.txt`` (YOLO rows), sized by the analysed image."""
    label = boxes_dir / f"{Path(image).stem}.txt"
    if not label.is_file():
        raise SkinInferError(f"{label}: no box file for {image}; every image needs one (empty when it has no box).")
    if not result.ok:
        return read_yolo(label, 1, 1, len(classes))
    return read_yolo(label, result.width, result.height, len(classes))


def confusion_png(report: dict[str, Any], title: str) -> bytes:
    """The confusion matrix as a PNG (OpenCV: no plotting library in a torch-free install)."""
    import cv2

    matrix = np.array(report["confusion"], float)
    rows, cols = report["labels"], report["confusion_columns"]
    cell, left, top = 64, 150, 90
    image = np.full((top + cell * len(rows) + 20, left + cell * len(cols) + 20, 3), 255, np.uint8)
    norm = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(image, title[:60], (10, 24), font, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, "rows: truth, columns: prediction", (10, 48), font, 0.45, (80, 80, 80), 1, cv2.LINE_AA)
    for j, name in enumerate(cols):
        short = "none" if name == NOT_ANSWERED else name[:8]
        cv2.putText(image, short, (left + j * cell + 4, top - 10), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for i, name in enumerate(rows):
        cv2.putText(image, name[:14], (10, top + i * cell + cell // 2 + 5), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for j in range(len(cols)):
            shade = int(255 - 200 * norm[i, j])
            x0, y0 = left + j * cell, top + i * cell
            cv2.rectangle(image, (x0, y0), (x0 + cell - 2, y0 + cell - 2), (255, shade, shade), -1)
            colour = (255, 255, 255) if norm[i, j] > 0.6 else (0, 0, 0)
            cv2.putText(image, str(int(matrix[i, j])), (x0 + 8, y0 + cell // 2 + 5), font, 0.5, colour, 1, cv2.LINE_AA)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise OSError("the confusion matrix could not be encoded")
    return encoded.tobytes()
