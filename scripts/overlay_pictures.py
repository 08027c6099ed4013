"""The overlay pictures in docs/pictures: a portrait, a group and a close-up, each at three sizes, drawn by the
runtime with the shipped defaults. Only scikit-image's public-domain astronaut photo is used (nothing from the
shared data is committed); the group is three copies of it at different scales.

    python scripts/overlay_pictures.py [--out docs/pictures]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from skimage import data

from skin_infer import Analyzer

SIDES = {"small": 400, "medium": 900, "large": 2000}


def subjects() -> dict[str, np.ndarray]:
    portrait = np.ascontiguousarray(data.astronaut()[:, :, ::-1])  # BGR
    group = np.full((512, 1200, 3), 235, np.uint8)
    for x, side in ((20, 420), (460, 340), (830, 360)):
        small = cv2.resize(portrait, (side, side), interpolation=cv2.INTER_AREA)
        group[512 - side :, x : x + side] = small
    closeup = portrait[60:260, 120:320]  # the face and little else: no whole face for the detector to find
    return {"portrait": portrait, "group": group, "closeup": closeup}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/pictures"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    analyzer = Analyzer(channels="BGR")
    for name, image in subjects().items():
        for size, side in SIDES.items():
            scale = side / max(image.shape[:2])
            resized = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else
                                 cv2.INTER_CUBIC)  # fmt: skip
            result = analyzer(resized, name=f"{name}_{size}")
            path = args.out / f"overlay_{name}_{size}.jpg"
            cv2.imwrite(str(path), result.plot(), [cv2.IMWRITE_JPEG_QUALITY, 80])
            print(path, result.summary())


if __name__ == "__main__":
    main()
