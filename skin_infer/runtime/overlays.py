"""Overlay pictures: the parse (or skin tint), face and region outlines, wrinkle boxes by type, heatmaps on skin,
labels that stay readable, and a legend.

Text scales with the picture, sits on a dark band, and is never drawn over another label or the legend: a label
that finds no free place near its region goes to a panel at the bottom left instead.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .files import atomic_write

if TYPE_CHECKING:  # results.py draws through this module: no import circle at run time
    from .results import ImageResult

FONT = cv2.FONT_HERSHEY_SIMPLEX
FACE_COLOUR, REGION_COLOUR, SKIN_TINT = (0, 200, 255), (80, 255, 80), np.array([255, 120, 0], np.float32)
Rect = tuple[int, int, int, int]  # x, y, w, h


def _palette(n: int = 256) -> np.ndarray:
    """Distinct BGR colours per label id (0, the background, stays uncoloured)."""
    hues = (np.arange(n) * 37) % 180
    hsv = np.stack([hues, np.full(n, 200), np.full(n, 255)], axis=1).astype(np.uint8)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0].astype(np.float32)


PALETTE = _palette()
# wrinkle types: saturated colours far from the parse's pastel tints, one per type of the shipped detector (the
# same colour in every picture); another detector's types take the parse palette's
WRINKLE_COLOURS = {
    "bunny_line": (255, 0, 255), "chin": (0, 0, 255), "crows_feet": (255, 255, 0), "forehead": (0, 255, 255),
    "frown_line": (255, 0, 0), "gummy_smile": (0, 128, 255), "masseter": (128, 0, 255), "sad_smile": (0, 255, 0),
    "smoker_lines": (255, 128, 128),
}  # fmt: skip


def wrinkle_colour(name: str) -> tuple[int, int, int]:
    if name in WRINKLE_COLOURS:
        return WRINKLE_COLOURS[name]
    return tuple(int(v) for v in PALETTE[1 + zlib.crc32(name.encode()) % 255])


class Labels:
    """Text on dark bands, scaled to the picture, placed where no earlier label or the legend is."""

    def __init__(self, image: np.ndarray):
        self.image = image
        self.scale = max(0.4, min(image.shape[:2]) / 900)
        self.thickness = 1 if self.scale < 0.8 else 2
        self.placed: list[Rect] = []

    def size(self, text: str) -> tuple[int, int]:
        (w, h), base = cv2.getTextSize(text, FONT, self.scale, self.thickness)
        return w + 6, h + base + 6

    def _free(self, rect: Rect) -> bool:
        x, y, w, h = rect
        inside = x >= 0 and y >= 0 and x + w <= self.image.shape[1] and y + h <= self.image.shape[0]
        return inside and not any(
            x < px + pw and px < x + w and y < py + ph and py < y + h for px, py, pw, ph in self.placed
        )

    def put(self, text: str, anchors: list[tuple[int, int]], colour) -> bool:
        """Draw ``text`` with its top-left at the first free one of ``anchors`` (each also tried a line lower
        and higher); False if there is no room."""
        w, h = self.size(text)
        for ax, ay in anchors:
            x = min(max(0, ax), max(0, self.image.shape[1] - w))
            for dy in (0, h, -h):
                rect = (x, ay + dy, w, h)
                if self._free(rect):
                    self.band(rect)
                    _, th = cv2.getTextSize(text, FONT, self.scale, self.thickness)[0]
                    cv2.putText(self.image, text, (x + 3, ay + dy + 3 + th), FONT, self.scale, colour,
                                self.thickness, cv2.LINE_AA)  # fmt: skip
                    return True
        return False

    def band(self, rect: Rect) -> None:
        x, y, w, h = rect
        area = self.image[y : y + h, x : x + w]
        area[:] = (area.astype(np.float32) * 0.35).astype(np.uint8)
        self.placed.append(rect)


def _panel(labels: Labels, entries: list[tuple[str, tuple | None]], bottom: bool = False) -> None:
    """Lines on one band at the top left (the legend: a swatch per colour) or the bottom left (labels that found
    no room beside their region, in their colour)."""
    if not entries:
        return
    sizes = [labels.size(text) for text, _ in entries]
    swatch = sizes[0][1] - 6 if not bottom else 0
    w, h = max(s[0] for s in sizes) + swatch + 6, sum(s[1] for s in sizes) + 6
    height, width = labels.image.shape[:2]
    top = max(0, height - 4 - h) if bottom else 4
    labels.band((4, top, min(w, width - 4), min(h, height - top)))
    y = top + 3
    for (text, colour), (_, th) in zip(entries, sizes, strict=True):
        if not bottom:
            cv2.rectangle(labels.image, (8, y + 3), (8 + swatch - 2, y + swatch + 1), colour, -1)
        cv2.putText(labels.image, text, (8 + swatch + (2 if swatch else 0), y + th - 5), FONT, labels.scale,
                    (255, 255, 255) if not bottom else colour, labels.thickness, cv2.LINE_AA)  # fmt: skip
        y += th


def render(result: ImageResult) -> np.ndarray:
    image = result.image.copy()
    labels = Labels(image)
    parsed = [f.parse for f in result.faces if f.parse is not None]
    for parse in parsed:  # the parse itself: each part in its own colour
        x, y, w, h = parse.window
        window, label_map = image[y : y + h, x : x + w], parse.full_labels()
        shown = label_map > 0
        window[shown] = (window[shown].astype(np.float32) * 0.6 + PALETTE[label_map[shown]] * 0.4).astype(np.uint8)
    skin = None
    if result.skin is not None:
        skin = cv2.resize(result.skin, image.shape[1::-1], interpolation=cv2.INTER_NEAREST).astype(bool)
        if not parsed:
            image[skin] = (image[skin].astype(np.float32) * 0.65 + SKIN_TINT * 0.35).astype(np.uint8)
    for i, region in enumerate(result.regions):
        if region.box is None or i not in result.cams:
            continue
        x, y, w, h = region.box
        heat = cv2.resize(result.cams[i], (w, h), interpolation=cv2.INTER_LINEAR)
        colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
        blended = cv2.addWeighted(image[y : y + h, x : x + w], 0.55, colour, 0.45, 0)
        if region.mask is not None:  # the heatmap only where the model looked at skin
            inside = cv2.resize(region.mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        else:
            inside = skin[y : y + h, x : x + w] if skin is not None else np.ones((h, w), bool)
        image[y : y + h, x : x + w][inside] = blended[inside]
    for region in result.regions:
        if region.box is None:
            continue
        x, y, w, h = region.box
        if region.mask is not None and region.name != "face_skin":  # a parsed region: its outline
            mask = cv2.resize(region.mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(image, contours, -1, REGION_COLOUR, 1, offset=(x, y))
        elif region.mask is None and region.name != "face_skin":
            cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), REGION_COLOUR, 1)
    types: dict[str, int] = {}
    for region in result.regions:
        for wrinkle in [w for w in region.wrinkles or [] if not w.uncertain]:  # what is counted, not the rest
            x, y, w, h = wrinkle.box
            cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), wrinkle_colour(wrinkle.type), labels.thickness + 1)
            types[wrinkle.type] = types.get(wrinkle.type, 0) + 1
    for face in result.faces:
        x, y, w, h = face.box
        cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), FACE_COLOUR, 2)
        for px, py in face.landmarks if face.landmarks is not None else ():
            cv2.circle(image, (round(float(px)), round(float(py))), 2, FACE_COLOUR, -1)
    legend = [("face", FACE_COLOUR), ("region", REGION_COLOUR)] if result.faces else []
    legend += [(f"{t} ({n})", wrinkle_colour(t)) for t, n in sorted(types.items())]
    _panel(labels, legend)
    # labels last, over every drawing and never over each other; a face's own label (its grades) first, above or
    # below its box, then the regions' names inside theirs; what finds no room goes to the bottom panel
    unplaced = []
    for region in sorted((r for r in result.regions if r.box is not None), key=lambda r: r.name != "face_skin"):
        first = next(iter(region.predictions.items()), None)
        text = region.name + (f" {first[0]} {first[1].label} ({first[1].score:.2f})" if first else "")
        if region.wrinkle_score is not None:
            text += f" wrinkles {region.wrinkle_score:.0f}"
        x, y, w, h = region.box
        if region.name == "face_skin":
            text = text.replace("face_skin", f"face {region.face_index}")
            anchors = [(x, y - labels.size(text)[1]), (x, y + h), (x, y)]
        else:
            anchors = [(x, y)]
        if not labels.put(text, anchors, REGION_COLOUR) and (region.name == "face_skin" or region.predictions):
            unplaced.append((text, REGION_COLOUR))
    _panel(labels, unplaced, bottom=True)
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
