"""A classifier bundle's measured manifest fields, measured on its val split through the product path and written
into its manifest (the runtime reads them: docs/routing.md):

- min_confidence: the given percentile (default 1) of the top-1 scores the product gives on val: answers less
  confident than 99 % of val answers are reported uncertain, not stated;
- min_face_px (face models): two thirds of the smallest face the model answered for on val (the largest face
  of each photo): below it, a face is smaller than any the model was trained at the scale of;
- needs_colour: the same val photos again, turned gray (luminance only, as a black-and-white photo): true when
  gray costs more than MAX_DROP of balanced accuracy; the runtime then gives colourless photos no answer.

    python scripts/confidence_threshold.py models/acne04-mobilenetv2 ../shared/data/acne04/labels.csv \\
        --head acne --label-column grade --where split=val
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from skin_infer import Analyzer
from skin_infer.runtime.bundle import load_bundle, save_manifest
from skin_infer.runtime.evaluation import answer_of, evaluate, read_labels

MAX_DROP = 0.05  # balanced accuracy (5 points)


def gray_jpeg(path: str) -> bytes:
    gray = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2GRAY)
    return cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("labels", type=Path)
    ap.add_argument("--head", required=True)
    ap.add_argument("--label-column", required=True)
    ap.add_argument("--where", action="append", default=[])
    ap.add_argument("--percentile", type=float, default=1.0)
    args = ap.parse_args()
    samples = read_labels(args.labels, args.label_column, where=args.where)
    measured_bundle = load_bundle(args.bundle)
    manifest, name = measured_bundle.manifest, measured_bundle.name  # its not_run notes go under its name
    head = next(h for h in manifest["heads"] if h["name"] == args.head)
    scores, sides, balanced = [], [], {}
    with tempfile.TemporaryDirectory() as tmp:  # a copy that answers gray photos too, while they are measured
        bundle = Path(shutil.copytree(args.bundle, Path(tmp) / args.bundle.name))
        unmeasured = load_bundle(bundle).manifest
        unmeasured.pop("needs_colour", None)
        save_manifest(bundle, unmeasured)
        # the bundle's own threshold off while measuring it
        analyzer = Analyzer(model=str(bundle), threads=2, min_confidence=0.0)
        for colours, sources in (
            ("colour", [s.file for s in samples]),
            ("gray", map(gray_jpeg, (s.file for s in samples))),
        ):
            answers = []
            for result in analyzer.stream(sources):
                answers.append(answer_of(result, args.head, name))
                graded = [r for r in result.regions if args.head in r.predictions]
                if colours == "gray" or not graded:
                    continue
                sizes = {i: f.box[2] * f.box[3] for i, f in enumerate(result.faces)}
                graded.sort(key=lambda r: -sizes.get(r.face_index, 0))  # the largest face's answer, as skin val
                scores.append(graded[0].predictions[args.head].score)
                if graded[0].face_index is not None:
                    sides.append(min(result.faces[graded[0].face_index].box[2:]))
            report = evaluate(samples, answers, head["labels"], head.get("ordinal", False))
            balanced[colours] = report["balanced_accuracy"]
    manifest["min_confidence"] = round(float(np.percentile(scores, args.percentile)), 3)
    if manifest.get("domain") == "face" and sides:
        manifest["min_face_px"] = int(min(sides) * 2 / 3)
    manifest["needs_colour"] = bool(balanced["colour"] - balanced["gray"] > MAX_DROP)
    manifest["thresholds_measured"] = {"split": args.where, "answers": len(scores), "percentile": args.percentile,
                                       "balanced_accuracy": balanced, "max_drop": MAX_DROP}  # fmt: skip
    save_manifest(args.bundle, manifest)
    keys = ("min_confidence", "min_face_px", "needs_colour", "thresholds_measured")
    print(json.dumps({k: manifest.get(k) for k in keys}))


if __name__ == "__main__":
    main()
