"""Object boxes (wrinkles): the detector's input framing, decoding its outputs, average precision and the report
``skin val --boxes``, the trainer and the export all give.

A detector bundle's graph returns, per image, ``scores`` [C, H, W] (sigmoid class scores) and ``boxes``
[4, H, W] (x1, y1, x2, y2 in input pixels of the box centred in each cell). Picking the peaks (3x3 local maxima,
CenterNet style) above the threshold and class-wise NMS happen here, once: the trainer's validation, the
runtime and ``skin val --boxes`` all call :func:`decode`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import SkinInferError

PAD = 127  # letterbox fill: zero after the detector's [-1, 1] scaling


class LabelError(SkinInferError, ValueError):
    """Box labels (YOLO files, classes.txt) that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Framing:
    """Where a letterboxed input sits in its source: ``source = (input - offset) / scale``."""

    scale: float
    offset_x: float
    offset_y: float

    def to_source(self, boxes: np.ndarray) -> np.ndarray:
        out = boxes.astype(np.float64).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.offset_x) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.offset_y) / self.scale
        return out


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, Framing]:
    """``image`` scaled so its long side is ``size``, centred on a ``size`` x ``size`` canvas of ``PAD``."""
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    canvas = np.full((size, size, 3), PAD, np.uint8)
    ox, oy = (size - nw) // 2, (size - nh) // 2
    canvas[oy : oy + nh, ox : ox + nw] = cv2.resize(image, (nw, nh), interpolation=interpolation)
    return canvas, Framing(scale, ox, oy)


@dataclass(frozen=True)
class Boxes:
    """Detections (or ground truth) of one image: class ids, scores (1 for truth), x1, y1, x2, y2 boxes."""

    classes: np.ndarray
    scores: np.ndarray
    xyxy: np.ndarray

    @classmethod
    def empty(cls) -> Boxes:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, 4), np.float64))

    def __len__(self) -> int:
        return len(self.classes)

    def above(self, threshold: float) -> Boxes:
        keep = self.scores >= threshold
        return Boxes(self.classes[keep], self.scores[keep], self.xyxy[keep])


def read_classes(root: Path) -> list[str]:
    path = root / "classes.txt"
    if not path.is_file():
        raise LabelError(f"{path}: missing; a detection dataset lists its class names, one per line, in classes.txt")
    names = [line.split()[-1] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(names) < 1:
        raise LabelError(f"{path}: no class names")
    return names


def read_yolo(path: Path, width: int, height: int, n_classes: int) -> Boxes:
    """One YOLO label file (``class cx cy w h``, normalised) as boxes in pixels; bad rows name the file."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            k, cx, cy, w, h = int(parts[0]), *map(float, parts[1:5])
        except (ValueError, IndexError):
            raise LabelError(f"{path}:{number}: expected 'class cx cy w h', got {line!r}") from None
        if not 0 <= k < n_classes or len(parts) != 5:
            raise LabelError(f"{path}:{number}: class {parts[0]} is not one of 0..{n_classes - 1} (classes.txt)")
        rows.append((k, (cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height))
    if not rows:
        return Boxes.empty()
    array = np.asarray(rows, np.float64)
    return Boxes(array[:, 0].astype(np.int64), np.ones(len(rows), np.float32), array[:, 1:])


def decode(
    scores: np.ndarray, boxes: np.ndarray, threshold: float, nms_iou: float = 0.5, max_detections: int = 100
) -> Boxes:
    """The peaks of one image's ``scores`` above ``threshold``, class-wise NMS, best ``max_detections`` kept."""
    hwc = np.ascontiguousarray(scores.transpose(1, 2, 0), np.float32)
    local_max = cv2.dilate(hwc, np.ones((3, 3), np.uint8)).reshape(hwc.shape)
    c, y, x = np.nonzero(((hwc >= local_max) & (hwc > threshold)).transpose(2, 0, 1))
    if not len(c):
        return Boxes.empty()
    s = scores[c, y, x].astype(np.float32)
    xyxy = boxes[:, y, x].T.astype(np.float64)
    xywh = np.column_stack([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]])
    keep = cv2.dnn.NMSBoxesBatched(xywh.tolist(), s.tolist(), c.tolist(), threshold, nms_iou)
    keep = np.asarray(keep, np.int64).reshape(-1)
    keep = keep[np.argsort(-s[keep], kind="stable")][:max_detections]
    return Boxes(c[keep].astype(np.int64), s[keep], xyxy[keep])


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` [N, 4] with every box in ``b`` [M, 4] (x1, y1, x2, y2)."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def average_precision(
    detections: list[Boxes], truths: list[Boxes], n_classes: int, iou: float = 0.5
) -> list[float | None]:
    """Per class, the area under the all-point interpolated precision-recall curve (PASCAL VOC 2010+) with
    greedy matching at ``iou`` over the whole set; ``None`` for a class with no true box."""
    result: list[float | None] = []
    for k in range(n_classes):
        n_true = sum(int((t.classes == k).sum()) for t in truths)
        if not n_true:
            result.append(None)
            continue
        hits: list[tuple[float, bool]] = []
        for det, truth in zip(detections, truths, strict=True):
            d, t = det.classes == k, truth.classes == k
            ds, db, tb = det.scores[d], det.xyxy[d], truth.xyxy[t]
            taken = np.zeros(len(tb), bool)
            overlaps = iou_matrix(db, tb) if len(db) and len(tb) else np.zeros((len(db), 0))
            for i in np.argsort(-ds, kind="stable"):
                j = int(np.argmax(overlaps[i])) if overlaps.shape[1] else -1
                hit = j >= 0 and overlaps[i, j] >= iou and not taken[j]
                if hit:
                    taken[j] = True
                hits.append((float(ds[i]), hit))
        hits.sort(key=lambda h: -h[0])
        tp = np.cumsum([h for _, h in hits]) if hits else np.zeros(0)
        recall = tp / n_true
        precision = tp / np.arange(1, len(hits) + 1) if hits else np.zeros(0)
        # precision envelope (monotone from the right), integrated over the recall steps
        envelope = np.concatenate([[0.0], precision, [0.0]])
        for i in range(len(envelope) - 2, -1, -1):
            envelope[i] = max(envelope[i], envelope[i + 1])
        steps = np.concatenate([[0.0], recall, [1.0]])
        changed = np.nonzero(steps[1:] != steps[:-1])[0]
        result.append(float(np.sum((steps[changed + 1] - steps[changed]) * envelope[changed + 1])))
    return result


MIN_TYPE_BOXES = 10  # the headline mAP is over the types with at least this many true boxes


def spearman(a: list[float], b: list[float]) -> float | None:
    """Spearman's rank correlation (ties get their average rank); None when either side is constant."""

    def ranks(values: list[float]) -> np.ndarray:
        v = np.asarray(values, np.float64)
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        for value in np.unique(v):  # average rank within ties
            r[v == value] = r[v == value].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def box_report(
    detections: list[Boxes], truths: list[Boxes], classes: list[str], counted: list[int] | None = None
) -> dict:
    """mAP at IoU 0.5 per type and over the types with >= ``MIN_TYPE_BOXES`` true boxes, the boxes per type, and
    Spearman's rho between each image's counted boxes (``counted``, default all its detections) and true ones."""
    ap = average_precision(detections, truths, len(classes), 0.5)
    counts = [sum(int((t.classes == k).sum()) for t in truths) for k in range(len(classes))]
    used = [a is not None and n >= MIN_TYPE_BOXES for a, n in zip(ap, counts, strict=True)]
    headline = [a for a, u in zip(ap, used, strict=True) if u]
    rho = spearman(counted if counted is not None else [len(d) for d in detections], [len(t) for t in truths])
    return {
        "images": len(truths),
        "map50": round(float(np.mean(headline)), 4) if headline else None,
        "map50_types": [c for c, u in zip(classes, used, strict=True) if u],
        "count_spearman": None if rho is None else round(rho, 4),
        "ap50": {c: (None if a is None else round(a, 4)) for c, a in zip(classes, ap, strict=True)},
        "true_boxes": dict(zip(classes, counts, strict=True)),
        "found_boxes": {c: sum(int((d.classes == k).sum()) for d in detections) for k, c in enumerate(classes)},
    }
