"""The light a photo was taken under, estimated from the photo itself, as a white-balance and exposure correction.

Colour measures are only comparable across photos when the light is taken out: a warm lamp raises b*, a green
cast lowers a*, one stop less light lowers L* by about 15. The correction is a von Kries diagonal transform in
linear RGB: per-channel gains that map the photo's light onto the average light of real photos. Which method and
why (measured on simulated casts and on real photos): docs/measures.md.

- ``scene``: the colour of the light from the mean of the scene around the skin (gray-world: the skin
  itself is left out, or a face filling the frame would be taken for the light and lose its own colour), the
  exposure from the scene's highlights (white patch: the 99th percentile of luminance, which a background's
  brightness moves far less than the mean). A close-up with too little scene falls back to ``face-whites``.
- ``face-whites``: the brightest quarter of the eye and inner-mouth pixels the face parser found (sclera, teeth).
- ``none`` (default): as captured. On real photos the corrections took real redness out together with the light
  and moved well-lit photos' tone bands (docs/measures.md), so they are options; ``redness_index`` (skin.py) is
  the measure that a cast of the whole photo cannot move.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .frame import crop

if TYPE_CHECKING:
    from .frame import Frame

METHODS = ("scene", "face-whites", "none")
DEFAULT_METHOD = "none"  # validity decides the default: docs/measures.md
# The average light of real photos, as each method reads it (linear RGB; 297 training photos of CelebAMask-HQ
# and ACNE04: scripts/light_reference.py). Normalised measures stay on the cameras' usual scale: a photo's
# correction is only its light's departure from that average.
SCENE_CHROMA_RGB = (1.3747, 0.9097, 0.6645)  # the scene's mean colour, divided by its luminance
SCENE_HIGHLIGHT = 0.6538  # the scene's 99th percentile of luminance
WHITES_RGB = (0.4493, 0.3318, 0.2830)  # sclera and teeth
LUMA_BGR = np.array([0.0722, 0.7152, 0.2126], np.float32)  # Rec. 709 luminance of linear BGR
MIN_WHITE_PIXELS = 120  # eye and inner-mouth pixels below clipping; the brightest quarter of them is used
MIN_SCENE_SHARE = 0.1  # of the image, besides skin and clipped pixels
SAMPLES = 100_000  # pixels a mean or a percentile needs at most
CLIPPED = 0.98  # pixels at or near clipping say nothing about the light's colour
CLIPPED_SRGB, DARK_SRGB = 253, 6  # the same in 8-bit sRGB (linear 0.98); black (linear 0.002) is noise
MAX_GAIN = 8.0  # gains beyond this are not a light: a photo of one red wall, a monochrome picture

_LINEAR = np.array(
    [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in np.arange(256) / 255.0], np.float32
)


def to_linear(bgr: np.ndarray) -> np.ndarray:
    """uint8 sRGB (any shape ending in 3 channels) -> float32 linear light in [0, 1]."""
    return _LINEAR[bgr]


def relight(bgr: np.ndarray, gains_rgb) -> np.ndarray:
    """The uint8 image as if its light had been ``gains_rgb`` times stronger per channel (a lamp's colour, a
    camera's white balance, exposure: 0.5 is one stop darker); what the correction undoes, and how it is tested."""
    linear = np.clip(to_linear(bgr) * np.array(gains_rgb[::-1], np.float32), 0, 1)
    srgb = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * np.power(linear, 1 / 2.4) - 0.055)
    return np.round(srgb * 255).astype(np.uint8)


@dataclass
class Light:
    """The correction applied before the normalised measures: linear-RGB gains and where they came from."""

    method: str  # the method that produced the gains ("none": no correction)
    gains_rgb: tuple[float, float, float]
    reference: str  # what the light was read from, or why it could not be
    pixels: int = 0  # how many pixels it was read from

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "gains_rgb": [round(g, 4) for g in self.gains_rgb],
            "reference": self.reference,
            "pixels": self.pixels,
        }

    @property
    def gains_bgr(self) -> np.ndarray:
        return np.array(self.gains_rgb[::-1], np.float32)


NO_CORRECTION = Light("none", (1.0, 1.0, 1.0), "as captured")


def _uncorrected(why: str) -> Light:
    return Light("none", (1.0, 1.0, 1.0), why)


def _plausible(gains_bgr: np.ndarray) -> tuple[float, float, float] | None:
    if not np.all(np.isfinite(gains_bgr)) or gains_bgr.max() / gains_bgr.min() > MAX_GAIN:
        return None
    if not np.all((gains_bgr > 1 / MAX_GAIN) & (gains_bgr < MAX_GAIN)):
        return None
    return tuple(float(g) for g in gains_bgr[::-1])


def read_scene(image: np.ndarray, skin: np.ndarray | None) -> tuple[np.ndarray, float, int] | None:
    """(the scene's mean colour over its luminance, BGR; its 99th percentile of luminance; pixels read), or None
    when less than ``MIN_SCENE_SHARE`` of the image is unclipped scene besides skin."""
    stride = max(1, int((image.shape[0] * image.shape[1] / SAMPLES) ** 0.5))
    sample = np.ascontiguousarray(image[::stride, ::stride])
    brightest = cv2.max(cv2.max(sample[:, :, 0], sample[:, :, 1]), sample[:, :, 2])
    usable = (brightest < CLIPPED_SRGB) & (brightest > DARK_SRGB)
    if skin is not None:
        usable &= skin[::stride, ::stride] == 0
    linear = to_linear(sample)
    luma = cv2.transform(linear, LUMA_BGR[None, :])
    highlight = float(np.percentile(luma, 99))  # clipped pixels count: they are the highlights
    count = int(np.count_nonzero(usable))
    if count < MIN_SCENE_SHARE * usable.size or highlight <= 0:
        return None
    mean = np.array(cv2.mean(linear, mask=usable.astype(np.uint8))[:3], np.float32)
    return mean / float(mean @ LUMA_BGR), highlight, count * stride**2


def read_whites(whites: np.ndarray | None) -> tuple[np.ndarray, int] | None:
    """(the median linear BGR of the brightest quarter of the eye and inner-mouth pixels, pixels), or None."""
    if whites is None:
        return None
    linear = to_linear(whites)
    linear = linear[linear.max(axis=1) < CLIPPED]
    if len(linear) < MIN_WHITE_PIXELS:
        return None
    luma = linear @ LUMA_BGR
    brightest = linear[luma >= np.quantile(luma, 0.75)]
    return np.median(brightest, axis=0), len(brightest)


def face_whites(whites: np.ndarray | None) -> Light:
    found = read_whites(whites)
    if found is None:
        return _uncorrected("too few eye and teeth pixels parsed to read the light from")
    gains = _plausible(np.array(WHITES_RGB[::-1], np.float32) / np.maximum(found[0], 1e-6))
    if gains is None:
        return _uncorrected("the eyes and teeth give no plausible light")
    return Light("face-whites", gains, "sclera and teeth", found[1])


def scene(image: np.ndarray, skin: np.ndarray | None) -> Light:
    found = read_scene(image, skin)
    if found is None:
        return _uncorrected("too little unclipped scene besides skin to read the light from")
    chroma, highlight, pixels = found
    reference = np.array(SCENE_CHROMA_RGB[::-1], np.float32)
    gains = _plausible(reference / np.maximum(chroma, 1e-6) * (SCENE_HIGHLIGHT / highlight))
    if gains is None:
        return _uncorrected("no plausible light (the scene is one strong colour)")
    return Light("scene", gains, "the scene around the skin", pixels)


def estimate(
    image: np.ndarray,
    method: str,
    skin: np.ndarray | None = None,
    whites: Callable[[], np.ndarray] | None = None,
) -> Light:
    """The light of a BGR uint8 image by ``method``; ``skin``: its 0/1 skin mask; ``whites``: gives the (n, 3) BGR
    pixels the parser labelled eye or inner mouth (called only when they are needed). When nothing can be read,
    the measures stay as captured and ``reference`` says why."""
    if method == "none":
        return NO_CORRECTION
    if method == "face-whites":
        return face_whites(whites() if whites else None)
    found = scene(image, skin)
    if found.method != "none":
        return found
    fallback = face_whites(whites() if whites else None)
    return fallback if fallback.method != "none" else _uncorrected(f"{found.reference}; {fallback.reference}")


def whites(image: np.ndarray, faces) -> np.ndarray:
    """The BGR pixels the parser labelled eye or inner mouth (sclera and teeth are among them)."""
    found = [np.zeros((0, 3), np.uint8)]
    for face in faces:
        if face.parse is None:
            continue
        labels = face.parse.labels
        window = cv2.resize(crop(image, face.parse.window), labels.shape[::-1], interpolation=cv2.INTER_AREA)
        found.append(window[face.parse.mask("eye") | face.parse.mask("inner_mouth")])
    return np.concatenate(found)


class EstimateLight:
    """The light stage: the photo's light by ``method``, read on the working copy around its skin."""

    timing = "regions"

    def __init__(self, method: str = DEFAULT_METHOD):
        self.method = method

    def __call__(self, frame: Frame) -> None:
        frame.light = estimate(frame.work, self.method, frame.skin, lambda: whites(frame.image, frame.faces))
