"""Skin masks and the colour measures taken on skin pixels.

Without a face parser, skin is found by a colour model: the chroma (Cr, Cb) of the face's own central
pixels sets the reference, so the mask follows the person's skin tone and the light instead of a fixed
range that fails on darker or lighter skin. A generic YCrCb range is used when there is no face.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Chai & Ngan's YCrCb skin range, widened: only used for whole images with no face to anchor on.
GENERIC_CR, GENERIC_CB = (128, 180), (70, 135)
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
    ycrcb = cv2.cvtColor(face, cv2.COLOR_BGR2YCrCb).astype(np.float32)
    y, chroma = ycrcb[:, :, 0], ycrcb[:, :, 1:]
    usable = (y > 35) & (y < 250)
    ref = chroma[seed & usable]
    if len(ref) < 20:
        return generic_skin_mask(face) & usable.astype(np.uint8)
    centre = np.median(ref, axis=0)
    spread = np.maximum(1.4826 * np.median(np.abs(ref - centre), axis=0), 3.0)  # MAD, floored for flat light
    distance = np.abs(chroma - centre) / spread
    mask = (distance.max(axis=2) <= k) & usable
    # Close pinholes (pores, specular dots) and drop specks, so regions measure contiguous skin.
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, kernel)
    return cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)


def skin_tone(ita: float) -> str:
    for threshold, name in ITA_BANDS:
        if ita > threshold:
            return name
    return "dark"


def colour_measures(image_bgr: np.ndarray, mask: np.ndarray) -> dict[str, float | str] | None:
    """CIELAB means, ITA° and redness (a*) over the pixels of ``image_bgr`` where ``mask`` is set; None if none."""
    mask = mask.astype(np.uint8, copy=False)
    if cv2.countNonZero(mask) == 0:
        return None
    lab = cv2.cvtColor(image_bgr.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_BGR2Lab)
    L, a, b = cv2.mean(lab, mask=mask)[:3]
    ita = math.degrees(math.atan2(L - 50.0, b))  # ITA = arctan((L* - 50) / b*), b* > 0 for skin
    return {
        "ita_deg": round(ita, 2),
        "skin_tone": skin_tone(ita),
        "redness_a": round(a, 2),
        "lab_l": round(L, 2),
        "lab_b": round(b, 2),
    }
