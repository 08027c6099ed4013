"""The shipped acne grader on ACNE04's test split, through the runtime (docs/acne.md, its model card):
on the whole photos (as trained), on the face crops the runtime feeds it, and with flip TTA.

    python scripts/acne_eval.py [--bundle models/acne04-mobilenetv2] [--shared ../shared]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score

from skin_infer.runtime import Classifier, YuNetDetector, read_image
from skin_infer.runtime.defaults import yunet_file
from skin_infer.runtime.routing import face_crop


def scores(pred: np.ndarray, truth: np.ndarray) -> str:
    return (
        f"{np.mean(pred == truth):.3f} | {balanced_accuracy_score(truth, pred):.3f} | "
        f"{np.mean(np.abs(pred - truth)):.3f} | {cohen_kappa_score(truth, pred, weights='quadratic'):.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=Path("models/acne04-mobilenetv2"))
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    args = parser.parse_args()
    root = args.shared / "data" / "acne04"
    rows = [r for r in csv.DictReader((root / "labels.csv").open()) if r["split"] == "test"]
    images = [read_image(root / r["file"]) for r in rows]
    truth = np.array([int(r["grade"]) for r in rows])
    grader, detector = Classifier(args.bundle, "cpu", 2), YuNetDetector(yunet_file(), "cpu", 2)
    crops = []
    for image in images:
        faces, _ = detector.detect(image)
        x, y, w, h = face_crop(faces[0].box, image.shape[1], image.shape[0]) if faces else (0, 0, *image.shape[1::-1])
        crops.append(image[y : y + h, x : x + w])
    found = sum(c.shape != i.shape for c, i in zip(crops, images, strict=True))
    print(f"test split: {len(rows)} photos; a face found on {found}\n")
    print("| input | accuracy | balanced accuracy | MAE (grades) | QWK |")
    print("|---|---|---|---|---|")
    for name, batch, tta in (
        ("whole photo (as trained)", images, []),
        ("face crop (what the runtime feeds it)", crops, []),
        ("face crop + flip TTA", crops, ["hflip"]),
    ):
        grader.tta = tta
        logits = np.concatenate([grader.run(batch[i : i + 32])[0] for i in range(0, len(batch), 32)])
        print(f"| {name} | {scores(logits.argmax(1), truth)} |")


if __name__ == "__main__":
    main()
