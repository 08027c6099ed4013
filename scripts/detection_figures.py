"""Face-detection figures for docs and the parser's model card: YuNet alone vs YuNet confirmed by the parse.

    python scripts/detection_figures.py [--shared ../shared] [--parser-model DIR] [--ham-limit N]

Precision and recall against dlib's hand-labelled boxes (PASCAL VOC photos), photos with a face found among
the 18 face photos, and false detections on the 4 no-face photos and on HAM10000 dermoscopy images (none
holds a face).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from dlib_truth import score  # noqa: E402

from skin_infer.runtime import SegFormerParser, YuNetDetector, read_image  # noqa: E402
from skin_infer.runtime.defaults import default_parser, yunet_file  # noqa: E402

PHOTO_SUFFIXES = {".jpg", ".png", ".bmp"}


def figures(finder, shared: Path, ham_limit: int) -> dict:
    faces = shared / "data" / "faces"
    photos = sorted(p for p in (faces / "photos").iterdir() if p.suffix in PHOTO_SUFFIXES)
    hits, found, total = score(lambda path: [f.box for f in finder.detect(read_image(path))[0]], faces)
    ham = sorted((shared / "data" / "ham10000").glob("*/*.jpg"))
    ham = ham[:: max(1, len(ham) // ham_limit)][:ham_limit] if ham_limit else ham
    start = time.perf_counter()
    ham_false = sum(bool(finder.detect(read_image(p))[0]) for p in ham)
    return {
        "photos_with_face": sum(bool(finder.detect(read_image(p))[0]) for p in photos),
        "photos": len(photos),
        "no_face_false": sum(bool(finder.detect(read_image(p))[0]) for p in sorted((faces / "no_face").iterdir())),
        "ham_false": ham_false,
        "ham_images": len(ham),
        "precision": hits / max(found, 1),
        "recall": hits / max(total, 1),
        "hits": hits,
        "found": found,
        "truth": total,
        "ham_ms_per_image": (time.perf_counter() - start) * 1e3 / max(len(ham), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--parser-model", type=Path, default=None, help="face-parser bundle (default: shipped)")
    parser.add_argument("--ham-limit", type=int, default=0, help="HAM10000 images to try (0: all)")
    args = parser.parse_args()
    bundle = args.parser_model or default_parser()
    detector = YuNetDetector(yunet_file(), "cpu", 2)
    rows = {
        "YuNet (score >= 0.6)": detector,
        "YuNet + parse confirmation": SegFormerParser(bundle, detector, "cpu", 2),
    }
    print(
        "| finder | face photos with a face | no-face photos with one | HAM10000 images with one | "
        "precision vs dlib | recall vs dlib |"
    )
    print("|---|---|---|---|---|---|")
    for name, finder in rows.items():
        f = figures(finder, args.shared, args.ham_limit)
        print(
            f"| {name} | {f['photos_with_face']}/{f['photos']} | {f['no_face_false']}/4 | "
            f"{f['ham_false']}/{f['ham_images']} | {f['hits']}/{f['found']} = {f['precision']:.2f} | "
            f"{f['hits']}/{f['truth']} = {f['recall']:.2f} |"
        )


if __name__ == "__main__":
    main()
