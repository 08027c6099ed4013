"""The reference lights of runtime/light.py: how the scene around the skin (its mean colour over luminance, its
highlights) and the sclera and teeth read in real photos, on average (geometric mean over photos, linear RGB).
Normalised measures are then "as under the average light of these photos", on the cameras' usual scale, and a
photo's correction is only its departure from that. Training photos only (CelebAMask-HQ train, ACNE04 train);
the evaluation (scripts/measure_stability.py) uses test photos.

    python scripts/light_reference.py [--per-set 150]
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import cv2
import numpy as np

from skin_infer import Analyzer
from skin_infer.runtime import light

SHARED = Path(os.environ.get("SKIN_INFER_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-set", type=int, default=150)
    args = ap.parse_args()
    celeb = sorted((SHARED / "data/celebamask_mini/train/images").glob("*.jpg"))[: args.per_set]
    rows = [r for r in csv.DictReader((SHARED / "data/acne04/labels.csv").open()) if r["split"] == "train"]
    acne = [SHARED / "data/acne04" / r["file"] for r in rows[:: max(1, len(rows) // args.per_set)]]
    analyzer = Analyzer(model=None, threads=2, light="none")
    chromas, highlights, whites = [], [], []
    for path in celeb + acne:
        result = analyzer(path)
        image = result.image
        skin = cv2.resize(result.skin, image.shape[1::-1], interpolation=cv2.INTER_NEAREST)  # working scale -> full
        found = light.read_scene(image, skin)
        if found is not None:
            chromas.append(np.log(found[0][::-1]))
            highlights.append(np.log(found[1]))
        white = light.read_whites(analyzer.pipeline.whites(image, result.faces))
        if white is not None:
            whites.append(np.log(white[0][::-1]))
    chroma, white = np.exp(np.mean(chromas, axis=0)), np.exp(np.mean(whites, axis=0))
    print(f"SCENE_CHROMA_RGB = ({', '.join(f'{v:.4f}' for v in chroma)})  # {len(chromas)} photos")
    print(f"SCENE_HIGHLIGHT = {np.exp(np.mean(highlights)):.4f}  # {len(highlights)} photos")
    print(f"WHITES_RGB = ({', '.join(f'{v:.4f}' for v in white)})  # {len(whites)} photos")


if __name__ == "__main__":
    main()
