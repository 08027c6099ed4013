"""Where the skin regions of a face are: forehead, cheeks, nose, chin and the whole face skin.

Regions are placed from the five landmarks, scaled by the distance between the eyes; a finder that
gives only a box gets landmarks at typical proportions of that box, so there is one placement rule.
"left" and "right" are the subject's: the left cheek appears on the image's right.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .results import Box, Region

if TYPE_CHECKING:
    from .frame import Frame

REGION_NAMES = ("forehead", "left_cheek", "right_cheek", "nose", "chin", "face_skin")
# Typical landmark positions inside a face box, as fractions of its width and height (order of faces.LANDMARK_NAMES).
BOX_LANDMARKS = np.array([[0.30, 0.40], [0.70, 0.40], [0.50, 0.62], [0.35, 0.80], [0.65, 0.80]], np.float32)


def landmarks_from_box(box: Box) -> np.ndarray:
    x, y, w, h = box
    return BOX_LANDMARKS * np.array([w, h], np.float32) + np.array([x, y], np.float32)


def _clip(x0: float, y0: float, x1: float, y1: float, width: int, height: int) -> Box | None:
    ix0, iy0 = max(0, round(x0)), max(0, round(y0))
    ix1, iy1 = min(width, round(x1)), min(height, round(y1))
    if ix1 - ix0 < 2 or iy1 - iy0 < 2:
        return None
    return ix0, iy0, ix1 - ix0, iy1 - iy0


def place_regions(box: Box, landmarks: np.ndarray | None, width: int, height: int) -> dict[str, Box]:
    """Region boxes [x, y, w, h] clipped to the image; a region that falls outside it is left out."""
    pts = landmarks if landmarks is not None else landmarks_from_box(box)
    eye_a, eye_b, nose, mouth_a, mouth_b = (np.asarray(p, np.float32) for p in pts)
    d = max(float(np.linalg.norm(eye_b - eye_a)), 1.0)
    eye_y = float(eye_a[1] + eye_b[1]) / 2
    mouth_x, mouth_y = (mouth_a + mouth_b) / 2
    spans = {
        "forehead": (eye_a[0] - 0.15 * d, eye_y - 0.95 * d, eye_b[0] + 0.15 * d, eye_y - 0.35 * d),
        "left_cheek": (eye_b[0] - 0.20 * d, eye_y + 0.30 * d, eye_b[0] + 0.45 * d, mouth_y + 0.05 * d),
        "right_cheek": (eye_a[0] - 0.45 * d, eye_y + 0.30 * d, eye_a[0] + 0.20 * d, mouth_y + 0.05 * d),
        "nose": (nose[0] - 0.22 * d, eye_y + 0.10 * d, nose[0] + 0.22 * d, nose[1] + 0.05 * d),
        "chin": (mouth_x - 0.30 * d, mouth_y + 0.25 * d, mouth_x + 0.30 * d, mouth_y + 0.60 * d),
        "face_skin": (box[0], box[1], box[0] + box[2], box[1] + box[3]),
    }
    placed = {name: _clip(*span, width, height) for name, span in spans.items()}
    return {name: b for name, b in placed.items() if b is not None}


def union_box(boxes: list[Box]) -> Box:
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return x0, y0, x1 - x0, y1 - y0


def _extent(mask: np.ndarray, axis: int, low: float = 5, high: float = 95) -> tuple[float, float] | None:
    """Robust extent (percentiles) of a mask's pixels along ``axis`` (0: rows, 1: columns); None if empty."""
    coords = np.nonzero(mask)[axis]
    if coords.size < 4:
        return None
    return float(np.percentile(coords, low)), float(np.percentile(coords, high))


def parse_regions(parse, box: Box, min_share: float = 0.01) -> dict[str, tuple[Box, np.ndarray] | None]:
    """Regions as masks from a face parse (``faces.FaceParse``): for each name, (its bounding box in the image,
    the boolean mask over that box at the label map's resolution), or None when the region is not visible.

    forehead: skin above the brows; cheeks: skin below the eyes, beside the nose, above the mouth; nose: the
    nose label; chin: skin below the lips; face_skin: skin and nose. Never eyes, brows, lips, hair or glasses.
    Only the face's own neighbourhood counts (a neighbour's skin in the parse window is not this face's). A
    region with fewer pixels than ``min_share`` of the face box (the far cheek of a profile) is not visible.
    """
    wx, wy = parse.window[:2]
    s = parse.scale  # label-map pixels per image pixel
    x, y, w, h = ((box[0] - wx) * s, (box[1] - wy) * s, box[2] * s, box[3] * s)  # the face box in the map
    near = np.zeros(parse.labels.shape, bool)
    near[max(0, round(y - h / 3)) : round(y + h * 1.125), max(0, round(x - w / 10)) : round(x + w * 1.1)] = True
    skin, nose = parse.mask("skin") & near, parse.mask("nose") & near
    rows = np.arange(parse.labels.shape[0])[:, None]
    cols = np.arange(parse.labels.shape[1])[None, :]
    brows, eyes, mouth = (_extent(parse.mask(p) & near, 0) for p in ("brow", "eye", "mouth"))
    nose_x = _extent(nose, 1)
    top = brows[0] if brows else eyes[0] - 0.5 * (eyes[1] - eyes[0]) if eyes else None
    masks = {
        "forehead": skin & (rows < top) if top is not None else None,
        "nose": nose,
        "chin": skin & (rows > mouth[1]) if mouth else None,
        "face_skin": parse.mask("face_skin") & near,
    }
    nose_y = _extent(nose, 0)
    # cheeks: below the eyes (closed or hidden eyes: the middle of the nose), above the mouth (else the nose tip)
    cheek_top = eyes[1] if eyes else (nose_y[0] + nose_y[1]) / 2 if nose_y else None
    cheek_bottom = mouth[0] if mouth else nose_y[1] if nose_y else None
    if cheek_top is not None and cheek_bottom is not None:
        band = skin & (rows > cheek_top) & (rows < cheek_bottom)
        centre = nose_x if nose_x else (x + w / 2,) * 2
        masks["left_cheek"] = band & (cols > centre[1])  # the subject's left: the image's right
        masks["right_cheek"] = band & (cols < centre[0])
    out: dict[str, tuple[Box, np.ndarray] | None] = {}
    min_pixels = max(20 * s * s, min_share * w * h)
    for name in REGION_NAMES:
        mask = masks.get(name)
        if mask is None or np.count_nonzero(mask) < min_pixels:
            out[name] = None
            continue
        ys, xs = np.nonzero(mask)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        image_box = (
            int(wx + round(x0 / s)),
            int(wy + round(y0 / s)),
            max(1, round((x1 - x0) / s)),
            max(1, round((y1 - y0) / s)),
        )
        out[name] = (image_box, mask[y0:y1, x0:x1])
    return out


class PlaceRegions:
    """The regions stage: each face's regions (a parsed face's from its labels, else boxes from its landmarks),
    in ``REGION_NAMES`` order, or the whole image when no face was found."""

    timing = "regions"

    def __call__(self, frame: Frame) -> None:
        w, h = frame.size
        for index, face in enumerate(frame.faces):
            if face.parse is not None:
                placed = parse_regions(face.parse, face.box)
            else:
                placed = {n: (b, None) for n, b in place_regions(face.box, face.landmarks, w, h).items()}
            for name in REGION_NAMES:
                if name not in placed:
                    continue
                if placed[name] is None:
                    note = "not visible in this photo (no skin of it parsed)"
                    frame.regions.append(Region(index, name, None, 0.0, None, note=note))
                else:
                    box, mask = placed[name]
                    frame.regions.append(Region(index, name, tuple(int(v) for v in box), 0.0, None, mask=mask))
        if not frame.faces:
            frame.regions.append(Region(None, "whole_image", (0, 0, w, h), 0.0, None))
