"""Skin masks and the colour measures taken on skin pixels.

Without a face parser, skin is found by a colour model: the chroma (Cr, Cb) of the face's own central
pixels sets the reference, so the mask follows the person's skin tone and the light instead of a fixed
range that fails on darker or lighter skin. A generic YCrCb range is used when there is no face.

Two stages of the analysis live here (``frame.py``): ``MaskSkin`` (the working copy and its skin mask) and
``MeasureRegions`` (each region's skin and colour measures).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .frame import crop
from .light import NO_CORRECTION, Light, to_linear
from .regions import union_box

if TYPE_CHECKING:
    from .frame import Frame

SEED_REGIONS = ("left_cheek", "right_cheek", "nose")  # a face's skin colour is read there (no parser)
WORK_FACE_SIDE = 192  # largest face window side in the working copy
WORK_IMAGE_SIDE = 512  # long side of the working copy when there is no face
# Chai & Ngan's YCrCb skin range, widened: only used for whole images with no face to anchor on.
GENERIC_CR, GENERIC_CB = (128, 180), (70, 135)
MIN_B = 1.0  # ITA needs a yellowish median: b* at least this
MAX_SAMPLES = 4096  # skin pixels a region's medians and quartiles are taken on (evenly spread)
# A photo whose pixels' chroma (CIELAB a*, b*) spread no more than this around their median has no colour to
# measure: grayscale, or a near-grey scan. The least colourful real photo here (a pale dermoscopy image) spreads
# 4.0; grey photos 0.0, whatever JPEG did to them. A strongly tinted monochrome (sepia) is not caught.
MONOCHROME_CHROMA = 2.5
COLOUR_FIELDS = ("ita_deg", "skin_tone", "redness_a", "lab_b", "ita_iqr", "redness_a_iqr", "lab_b_iqr",
                 "redness_index", "_erythema")  # fmt: skip
ERYTHEMA = "_erythema"  # a region's sampled pixels' erythema index, read by redness_index(), never reported
# A pixel counts as red when its erythema index is this far above its face's baseline (log10 units: its R/G
# ratio 12 % higher). Chosen on real photos: the share of such pixels follows the ACNE04 grade (Spearman 0.18,
# scripts/measure_validity.py, docs/measures.md) where a centre-against-forehead ratio did not (-0.08).
RED_MARGIN = 0.05
# linear BGR -> CIE XYZ (sRGB primaries, D65), each row divided by the white's X, Y, Z: OpenCV's constants
_BGR_TO_XYZN = np.array(
    [[0.180423, 0.357580, 0.412453], [0.072169, 0.715160, 0.212671], [0.950227, 0.119193, 0.019334]], np.float32
) / np.array([[0.950456], [1.0], [1.088754]], np.float32)
_LAB_EPSILON = 0.008856  # (6/29)^3
# Individual Typology Angle bands (Chardon et al. 1991; Del Bino et al. 2006).
ITA_BANDS = ((55, "very light"), (41, "light"), (28, "intermediate"), (10, "tan"), (-30, "brown"))


def generic_skin_mask(image: np.ndarray) -> np.ndarray:
    """uint8 0/1 mask of pixels in a generic skin chroma range (any luma)."""
    ycrcb = cv2.cvtColor(image, cv2.COLOR_BGR2YCrCb)
    return cv2.inRange(ycrcb, (0, GENERIC_CR[0], GENERIC_CB[0]), (255, GENERIC_CR[1], GENERIC_CB[1])) // 255


def adaptive_skin_mask(face: np.ndarray, seed: np.ndarray, k: float = 3.0) -> np.ndarray:
    """uint8 0/1 skin mask over a face crop: pixels whose chroma lies within ``k`` robust deviations of the seed's.

    ``seed`` is a boolean mask over ``face`` marking pixels that are skin on almost every face
    (cheeks and nose); very dark and blown-out pixels (eyes, nostrils, glare) never count.
    """
    ycrcb = cv2.cvtColor(face, cv2.COLOR_BGR2YCrCb)
    y = ycrcb[:, :, 0]
    usable = (y > 35) & (y < 250)
    ref = ycrcb[:, :, 1:][seed & usable].astype(np.float32)
    if len(ref) < 20:
        return generic_skin_mask(face) & usable.astype(np.uint8)
    centre = quantiles(ref, 50)
    spread = np.maximum(1.4826 * quantiles(np.abs(ref - centre), 50), 3.0)  # MAD, floored for flat light
    # |chroma - centre| <= k * spread on both channels, as integer bounds (inRange on the uint8 image is one pass)
    low, high = np.ceil(centre - k * spread), np.floor(centre + k * spread)
    mask = cv2.inRange(ycrcb, (36, *low.tolist()), (249, *high.tolist())) & 1
    # Close pinholes (pores, specular dots) and drop specks, so regions measure contiguous skin.
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    return cv2.morphologyEx(cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel), cv2.MORPH_OPEN, kernel)


def is_monochrome(image_bgr: np.ndarray) -> bool:
    """True for a photo without colour (grayscale or near-grey): no tone or redness can be read from it."""
    h, w = image_bgr.shape[:2]
    step = max(1, int((h * w / 4096) ** 0.5))  # a few thousand pixels: the 90th percentile is stable there
    ab = _lab(to_linear(image_bgr[::step, ::step]).reshape(-1, 3))[:, 1:]
    da, db = (ab - quantiles(ab, 50)).T
    return float(quantiles(np.sqrt(da * da + db * db), 90)) < MONOCHROME_CHROMA  # np.linalg.norm's sum, 5x faster


def without_colour(measures: dict | None) -> dict | None:
    """The measures of a photo without colour: lightness and the pixel count stay, colour fields are null."""
    if measures is None:
        return None
    out = {k: (None if k in COLOUR_FIELDS or k.removesuffix("_captured") in COLOUR_FIELDS else v)
           for k, v in measures.items()}  # fmt: skip
    out["ita_note"] = "no colour in this photo (grayscale or near-grey): no skin tone or redness"
    return out


def redness_index(regions: dict[str, dict | None]) -> dict[str, float | None]:
    """Per region of one face (name -> its measures), ``redness_index``: the share (%) of its skin pixels whose
    erythema index log10(R/G) (linear light) is more than ``RED_MARGIN`` above the face's own baseline (the median
    over its face skin): red spots and flushed areas against the person's own skin. Relative within the face, so
    a cast of the whole photo (a gain per channel) cancels by construction; null without colour or face skin."""
    face = regions.get("face_skin")
    sample = face.get(ERYTHEMA) if face else None
    if sample is None or not len(sample):
        return {name: None for name in regions}
    baseline = float(quantiles(sample, 50))
    out: dict[str, float | None] = {}
    for name, measures in regions.items():
        ei = measures.get(ERYTHEMA) if measures else None
        out[name] = None if ei is None or not len(ei) else round(100 * float((ei > baseline + RED_MARGIN).mean()), 2)
    return out


def skin_tone(ita: float | None) -> str | None:
    if ita is None:
        return None
    for threshold, name in ITA_BANDS:
        if ita > threshold:
            return name
    return "dark"


def quantiles(values: np.ndarray, q) -> np.ndarray:
    """``np.percentile(values, q, axis=0)`` (linear interpolation, the same formula) by a full sort: numpy's SIMD
    sort of a region's few thousand values is 4x faster than the partition np.percentile and np.median run, and
    every region takes several (2-3 ms of a portrait's analysis)."""
    ordered = np.sort(np.ascontiguousarray(values.T), axis=-1)  # each column's values contiguous
    n = ordered.shape[-1]
    position = np.asarray(q, np.float64) / 100 * (n - 1)
    below = np.floor(position).astype(np.intp)
    t = (position - below).astype(ordered.dtype)
    low, high = ordered[..., below], ordered[..., np.minimum(below + 1, n - 1)]
    step = high - low
    return np.where(t >= 0.5, high - step * (1 - t), low + step * t).T


def _lab(linear_bgr: np.ndarray) -> np.ndarray:
    """(n, 3) linear BGR in [0, 1] -> (n, 3) CIELAB (D65), OpenCV's COLOR_LBGR2Lab to 1e-4 and faster on the few
    thousand pixels a measure samples (cv2.pow is the fast cube root). Not cvtColor: OpenCV builds all its Lab
    tables on its first Lab conversion, 45-90 ms of every process's start."""
    xyz = (np.clip(linear_bgr, 0, 1) @ _BGR_TO_XYZN.T).astype(np.float32, copy=False)
    f = cv2.pow(xyz, 1 / 3)
    low = xyz <= _LAB_EPSILON  # where CIELAB's cube root turns linear (L* then is 903.3 Y, the same line)
    if low.any():
        f[low] = 7.787 * xyz[low] + 16 / 116
    fx, fy, fz = f.T
    return np.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], axis=1)


def _lab_measures(L: float, a: float, b: float) -> dict[str, float | str | None]:
    """The fields of one median colour, with ITA° where it is defined (b* > 0, so ITA is in (-90, 90)); below
    ``MIN_B`` it is null too: there it swings by tens of degrees with a tenth of a unit of b*, and no skin
    colour is that close to neutral."""
    ita = math.degrees(math.atan((L - 50.0) / b)) if b >= MIN_B else None
    return {
        "ita_deg": None if ita is None else round(min(89.99, max(-89.99, ita)), 2),  # rounding stays in range
        "skin_tone": skin_tone(ita),
        "redness_a": round(a, 2),
        "lab_l": round(L, 2),
        "lab_b": round(b, 2),
    }


def colour_measures(image_bgr: np.ndarray, mask: np.ndarray, light: Light = NO_CORRECTION) -> dict | None:
    """Colour measures over the pixels of ``image_bgr`` where ``mask`` is set; None if there are none.

    The existing fields (``ita_deg``, ``skin_tone``, ``redness_a``, ``lab_l``, ``lab_b``) are medians after the
    ``light`` correction; ``*_captured`` the same as the camera recorded them; ``*_iqr`` the spread of the
    corrected pixels; ``pixels`` how many skin pixels the numbers stand on.
    """
    where = np.flatnonzero(mask)
    if len(where) == 0:
        return None
    # Medians and quartiles need no more than a few thousand pixels: an even sample keeps a region's cost flat.
    # Indices first, then only the sampled pixels (``image_bgr[mask]`` copies them all: 4x slower on a face).
    sample = image_bgr[np.divmod(where[:: max(1, len(where) // MAX_SAMPLES)], mask.shape[1])]
    linear = to_linear(sample)
    corrected = light.method != "none"
    both = _lab(np.concatenate([linear * light.gains_bgr, linear]) if corrected else linear)
    lab, captured = both[: len(sample)], both[len(sample) :]
    q1, median, q3 = quantiles(lab, (25, 50, 75))
    out = _lab_measures(*(float(v) for v in median))
    yellowish = lab[:, 2] >= MIN_B
    ita_iqr = None
    if out["ita_deg"] is not None:
        L, _, b = lab[yellowish].T
        pixel_ita = np.degrees(np.arctan((L - 50.0) / b))
        ita_iqr = round(float(np.subtract(*quantiles(pixel_ita, (75, 25)))), 2)
    out.update(
        pixels=int(len(where)),
        ita_iqr=ita_iqr,
        redness_a_iqr=round(float(q3[1] - q1[1]), 2),
        lab_l_iqr=round(float(q3[0] - q1[0]), 2),
        lab_b_iqr=round(float(q3[2] - q1[2]), 2),
    )
    first = _lab_measures(*(float(v) for v in quantiles(captured, 50))) if corrected else dict(list(out.items())[:5])
    out.update({f"{name}_captured": value for name, value in first.items()})
    # the erythema index log10(R/G) of linear light: a channel gain (a lamp's colour, a camera's white balance)
    # shifts every pixel's by the same amount, so differences between regions of one face cancel it exactly
    out[ERYTHEMA] = np.log10(np.maximum(linear[:, 2], 1e-4) / np.maximum(linear[:, 1], 1e-4))
    if out["ita_deg"] is None:
        out["ita_note"] = (
            f"ITA undefined: the median colour has b* < {MIN_B:g}: not skin, or a light the correction misread "
            "(a strongly coloured scene: see ita_deg_captured)"
        )
    return out


def working_copy(image: np.ndarray, scale: float) -> np.ndarray:
    """The image ``scale`` times its size (at least 1x1). OpenCV's INTER_AREA is fast only at a factor of 1/2
    (0.2 ms on a 1-MP photo, 4 ms at 0.38), so the image is halved with it while the factor left is at most 1/2,
    and linear interpolation does the rest (a factor between 1/2 and 1, which leaves little to alias)."""
    h, w = image.shape[:2]
    if scale >= 1:
        return image
    size = max(1, round(w * scale)), max(1, round(h * scale))
    while scale <= 0.5 and min(image.shape[:2]) >= 2:
        image, scale = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA), scale * 2
    return image if image.shape[1::-1] == size else cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


class MaskSkin:
    """The skin stage: the working copy (the largest face's regions within ``WORK_FACE_SIDE`` pixels), its
    skin mask (the parser's, else each face's colour model seeded from its cheeks and nose, else (no face) the
    generic colour range) and whether the photo has colour at all."""

    timing = "regions"

    def __call__(self, frame: Frame) -> None:
        (w, h), faces = frame.size, frame.faces
        boxes = [[f.box] + [r.box for r in frame.regions if r.face_index == i and r.box] for i, f in enumerate(faces)]
        largest = max((max(union_box(b)[2:]) for b in boxes), default=0)
        scale = min(1.0, WORK_FACE_SIDE / largest) if faces else min(1.0, WORK_IMAGE_SIDE / max(h, w))
        frame.work = work = working_copy(frame.image, scale)
        frame.scale = work.shape[1] / w, work.shape[0] / h
        frame.colourless = is_monochrome(work)
        if not faces:
            frame.skin = generic_skin_mask(work)
        elif frame.parsed_skin is not None:
            frame.skin = cv2.resize(
                frame.parsed_skin.astype(np.uint8), work.shape[1::-1], interpolation=cv2.INTER_NEAREST
            )
        else:
            frame.skin = np.zeros(work.shape[:2], np.uint8)
            for i in range(len(faces)):
                placed = {r.name: frame.to_work(r.box) for r in frame.regions if r.face_index == i and r.box}
                window = union_box(list(placed.values()))
                wx, wy = window[0], window[1]
                seed = np.zeros(window[3:1:-1], bool)
                for name in SEED_REGIONS:
                    if name in placed:
                        x, y, bw, bh = placed[name]
                        seed[y - wy : y - wy + bh, x - wx : x - wx + bw] = True
                crop(frame.skin, window)[...] |= adaptive_skin_mask(crop(work, window), seed)


class MeasureRegions:
    """The measure stage: each region's skin (its parsed pixels, else the skin mask inside its box), skin
    fraction and colour measures (none without colour, none on a photo that shows no skin), then the measures
    against the region's own face; regions with at least ``min_skin`` skin are classifiable."""

    timing = "regions"

    def __init__(self, min_skin: float = 0.25):
        self.min_skin = min_skin

    def __call__(self, frame: Frame) -> None:
        for index, region in enumerate(frame.regions):
            if region.box is None:
                continue
            small = frame.to_work(region.box)
            if region.mask is None:  # a box: its skin is the image's skin mask inside it
                mask = crop(frame.skin, small)
            else:  # a parsed region: its own pixels
                mask = cv2.resize(region.mask.astype(np.uint8), small[2:], interpolation=cv2.INTER_NEAREST)
            measures = None if frame.not_skin else colour_measures(crop(frame.work, small), mask, frame.light)
            region.measures = without_colour(measures) if frame.colourless else measures
            region.skin_fraction = round(cv2.countNonZero(mask) / mask.size, 4)
            frame.skin_of[index] = (small, mask)
            if frame.not_skin:
                region.note = f"not analysed: {frame.domain.describe()}"
            elif region.name != "whole_image" and region.skin_fraction < self.min_skin:
                region.note = f"too little skin to classify (below {self.min_skin:.0%})"
            else:
                frame.classifiable.append(index)
        faces: dict[int, dict[str, object]] = {}
        for region in frame.regions:
            if region.face_index is not None:
                faces.setdefault(region.face_index, {})[region.name] = region
        for named in faces.values():  # whole images have no face to measure against
            values = redness_index({n: r.measures for n, r in named.items()})
            for name, region in named.items():
                if region.measures is not None:
                    region.measures["redness_index"] = values[name]
        for region in frame.regions:
            if region.measures is not None:
                region.measures.setdefault("redness_index", None)
                region.measures.pop(ERYTHEMA, None)
