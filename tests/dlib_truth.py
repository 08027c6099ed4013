"""dlib's hand-labelled face boxes for the PASCAL VOC photos in shared/data/faces, and box matching."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path


def load_truth(folder: Path) -> dict[str, list[tuple[int, int, int, int]]]:
    """{file name: [(x, y, w, h), ...]} from training.xml and testing.xml."""
    truth: dict[str, list[tuple[int, int, int, int]]] = {}
    for name in ("training.xml", "testing.xml"):
        for image in ET.parse(folder / name).getroot().iter("image"):
            boxes = truth.setdefault(Path(image.get("file")).name, [])
            boxes += [tuple(int(b.get(k)) for k in ("left", "top", "width", "height")) for b in image.iter("box")]
    return truth


def iou(a, b) -> float:
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw, ih = max(0, min(ax1, bx1) - max(a[0], b[0])), max(0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter) if inter else 0.0


def match(found, truth, threshold: float = 0.3) -> tuple[int, int, int]:
    """Greedy one-to-one matching by IoU: (true positives, detections, ground-truth faces).

    The threshold is low on purpose: dlib's boxes are tight squares, detectors' boxes include the forehead.
    """
    pairs = sorted(((iou(f, t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth)), reverse=True)
    used_f, used_t, hits = set(), set(), 0
    for score, i, j in pairs:
        if score < threshold:
            break
        if i not in used_f and j not in used_t:
            used_f.add(i)
            used_t.add(j)
            hits += 1
    return hits, len(found), len(truth)


def score(detect, faces: Path) -> tuple[int, int, int]:
    """(true positives, detections, ground-truth faces) of ``detect(path) -> boxes`` over dlib's labelled photos."""
    hits = found = total = 0
    for file, boxes in load_truth(faces / "dlib_ground_truth").items():
        h, f, t = match(detect(faces / "photos" / file), boxes)
        hits, found, total = hits + h, found + f, total + t
    return hits, found, total
