"""The domain model's routing thresholds, measured on its val split, written into its manifest (runtime/routing.py):

- dermoscopy: the lowest p(dermoscopy) that still keeps 99 % of val dermoscopy images, never below 5x the
  highest p(dermoscopy) of a val photo that is not dermoscopy;
- face_skin: the 3rd percentile of p(face_skin) over val face-skin close-ups (>= 97 % answered), never below 5x
  the highest of a val photo that is not face skin;
- other: 0.5. None above 0.5 (an answer is never less likely than its alternatives together).

    python scripts/domain_thresholds.py runs/domain/domain.csv [--bundle models/domain-mobilenetv2]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from skin_infer.runtime.bundle import load_bundle, save_manifest
from skin_infer.runtime.classifier import Classifier
from skin_infer.runtime.defaults import default_parser, yunet_file
from skin_infer.runtime.faces import YuNetDetector
from skin_infer.runtime.images import read_image
from skin_infer.runtime.parsers import SegFormerParser

MARGIN = 5  # a threshold stays this far above every score a photo of another class got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", type=Path)
    ap.add_argument("--bundle", type=Path, default=Path("models/domain-mobilenetv2"))
    args = ap.parse_args()
    model = Classifier(args.bundle, "cpu", 2)
    finder = SegFormerParser(default_parser(), YuNetDetector(yunet_file(), "cpu", 2), "cpu", 2)
    probs: dict[str, list[dict]] = {"dermoscopy": [], "face_skin": [], "other": []}
    for row in csv.DictReader(args.csv.open()):
        if row["split"] != "val":
            continue
        image = read_image(row["path"])
        if finder.detect(image)[0]:  # the domain model answers only for photos without a face, as in the product
            continue
        probs[row["domain"]].append(model.predictions(model.run([image])[0])[0]["domain"].probs)
    p = {truth: {label: np.array([x[label] for x in rows]) for label in probs} for truth, rows in probs.items()}
    others = lambda label: np.concatenate([p[t][label] for t in probs if t != label])  # noqa: E731
    kept_share = {"dermoscopy": 1, "face_skin": 3}  # percentiles of each class's own val images
    thresholds = {
        label: max(float(np.percentile(p[label][label], q)), MARGIN * float(others(label).max()))
        for label, q in kept_share.items()
    }
    thresholds["other"] = 0.5
    thresholds = {k: round(min(v, 0.5), 3) for k, v in thresholds.items()}
    kept = {k: float((p[k][k] >= thresholds[k]).mean()) for k in probs}
    print(json.dumps({"thresholds": thresholds, "val_kept": kept, "val_images": {k: len(v) for k, v in probs.items()}}))
    manifest = load_bundle(args.bundle).manifest
    manifest["thresholds"] = thresholds
    manifest["thresholds_measured"] = {"split": "val", "kept": kept, "images": {k: len(v) for k, v in probs.items()}}
    save_manifest(args.bundle, manifest)


if __name__ == "__main__":
    main()
