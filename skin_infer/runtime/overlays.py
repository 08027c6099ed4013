"""Overlay pictures: skin mask tint, face and region boxes with their labels, and CAM heatmaps."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .files import atomic_write

if TYPE_CHECKING:  # results.py draws through this module: no import circle at run time
    from .results import ImageResult

LABEL_MIN_WIDTH = 40
FACE_COLOUR, REGION_COLOUR, SKIN_TINT = (0, 200, 255), (80, 255, 80), np.array([255, 120, 0], np.float32)


def _palette(n: int = 256) -> np.ndarray:
    """Distinct BGR colours per label id (0, the background, stays uncoloured)."""
    hues = (np.arange(n) * 37) % 180
    hsv = np.stack([hues, np.full(n, 200), np.full(n, 255)], axis=1).astype(np.uint8)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0].astype(np.float32)


PALETTE = _palette()


def render(result: ImageResult) -> np.ndarray:
    image = result.image.copy()
    parsed = [f.parse for f in result.faces if f.parse is not None]
    for parse in parsed:  # the parse itself: each part in its own colour
        x, y, w, h = parse.window
        window, labels = image[y : y + h, x : x + w], parse.full_labels()
        shown = labels > 0
        window[shown] = (window[shown].astype(np.float32) * 0.6 + PALETTE[labels[shown]] * 0.4).astype(np.uint8)
    if result.skin is not None and not parsed:
        skin = cv2.resize(result.skin, image.shape[1::-1], interpolation=cv2.INTER_NEAREST).astype(bool)
        image[skin] = (image[skin].astype(np.float32) * 0.65 + SKIN_TINT * 0.35).astype(np.uint8)
    for i, region in enumerate(result.regions):
        if region.box is None:
            continue
        x, y, w, h = region.box
        mask = (
            None
            if region.mask is None
            else cv2.resize(region.mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        )
        if i in result.cams:
            heat = cv2.resize(result.cams[i], (w, h), interpolation=cv2.INTER_LINEAR)
            colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
            blended = cv2.addWeighted(image[y : y + h, x : x + w], 0.55, colour, 0.45, 0)
            inside = mask if mask is not None else np.ones((h, w), bool)
            image[y : y + h, x : x + w][inside] = blended[inside]
        if mask is not None and region.name != "face_skin":  # a parsed region: its outline
            contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(image, contours, -1, REGION_COLOUR, 1, offset=(x, y))
        elif mask is None:
            cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), REGION_COLOUR, 1)
        if w < LABEL_MIN_WIDTH and region.name != "face_skin":
            continue  # labels of small faces would cover each other; the outline alone says enough
        first = next(iter(region.predictions.values()), None)
        text = region.name + (f" {first.label} {first.score:.2f}" if first else "")
        cv2.putText(image, text, (x + 2, y + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, REGION_COLOUR, 1, cv2.LINE_AA)
    for face in result.faces:
        x, y, w, h = face.box
        cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), FACE_COLOUR, 2)
        for px, py in face.landmarks if face.landmarks is not None else ():
            cv2.circle(image, (round(float(px)), round(float(py))), 2, FACE_COLOUR, -1)
    return image


def write_overlay(result: ImageResult, path: Path) -> Path:
    """Encode the overlay in the format of ``path``'s suffix and write it atomically."""
    suffix = path.suffix.lower() or ".jpg"
    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if suffix in (".jpg", ".jpeg") else []
    try:
        ok, encoded = cv2.imencode(suffix, render(result), params)
    except cv2.error:
        ok = False
    if not ok:
        raise OSError(f"{path}: cannot encode an overlay as {suffix}; use .jpg or .png")
    return atomic_write(path, encoded.tobytes())
