"""The domain model's data (what a photo without a face shows), built from the shared data into RUNS_DIR:

    python scripts/domain_data.py RUNS_DIR [--shared ../shared]

- dermoscopy: HAM10000 images (every 6th of each split);
- face_skin: ACNE04 face photos (all, their split) and CelebAMask-HQ portraits (every 3rd); training crops make
  cheek and forehead close-ups of them;
- other: photo patches with no skin: crops of CelebAMask-HQ backgrounds, hair and clothes chosen with the
  label maps (no skin, nose or neck pixel), written as JPEGs under RUNS_DIR/other.

Writes RUNS_DIR/domain.csv (path, domain, split); nothing is copied from shared except those crops.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

SKIN_IDS = (1, 2, 17)  # skin, nose, neck in CelebAMask-HQ


def split_of(i: int) -> str:
    return "val" if i % 10 == 8 else "test" if i % 10 == 9 else "train"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    args = parser.parse_args()
    data = args.shared.resolve() / "data"
    rows = []
    ham = list(csv.DictReader((data / "ham10000" / "labels.csv").open()))
    rows += [(data / "ham10000" / r["path"], "dermoscopy", r["split"]) for r in ham[::6]]
    acne = list(csv.DictReader((data / "acne04" / "labels.csv").open()))
    rows += [(data / "acne04" / r["file"], "face_skin", r["split"]) for r in acne]
    celeb = sorted((data / "celebamask_mini" / "train" / "images").glob("*.jpg"))
    rows += [(p, "face_skin", split_of(i)) for i, p in enumerate(celeb) if i % 3 == 0]
    other = args.runs / "other"
    other.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i, image_path in enumerate(celeb):
        with Image.open(image_path.parent.parent / "masks" / f"{image_path.stem}.png") as mask:
            labels = np.asarray(mask)
        skin = np.isin(labels, SKIN_IDS).astype(np.float32)
        image = cv2.imread(str(image_path))
        for _ in range(20):  # a few tries for a skin-free square of 96-192 px
            side = int(rng.integers(96, 193))
            y, x = (int(rng.integers(0, 512 - side)) for _ in range(2))
            if skin[y : y + side, x : x + side].mean() == 0:
                out = other / f"{image_path.stem}.jpg"
                cv2.imwrite(str(out), image[y : y + side, x : x + side], [cv2.IMWRITE_JPEG_QUALITY, 92])
                rows.append((out.resolve(), "other", split_of(i)))
                break
    with (args.runs / "domain.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "domain", "split"])
        writer.writerows((str(p), d, s) for p, d, s in rows)
    counts = {d: sum(r[1] == d for r in rows) for d in ("dermoscopy", "face_skin", "other")}
    print(f"{args.runs / 'domain.csv'}: {len(rows)} images {counts}")


if __name__ == "__main__":
    main()
