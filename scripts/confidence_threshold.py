"""A classifier bundle's `min_confidence` (and, for face models, `min_face_px`), measured on its val split through
the product path and written into its manifest (the runtime marks answers below it "uncertain"; docs/routing.md).

- min_confidence: the given percentile (default 1) of the top-1 scores the product gives on val: answers less
  confident than 99 % of val answers are reported uncertain, not stated;
- min_face_px (face models): two thirds of the smallest face the model answered for on val (the largest face
  of each photo): below it, a face is smaller than any the model was trained at the scale of.

    python scripts/confidence_threshold.py models/acne04-mobilenetv2 ../shared/data/acne04/labels.csv \\
        --head acne --label-column grade --where split=val
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from skin_infer import Analyzer
from skin_infer.runtime.bundle import load_bundle, save_manifest
from skin_infer.runtime.evaluation import read_labels


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
    # the bundle's own threshold off while measuring it
    analyzer = Analyzer(model=str(args.bundle), threads=2, min_confidence=0.0)
    scores, sides = [], []
    for result in analyzer.stream([s.file for s in samples]):
        graded = [r for r in result.regions if args.head in r.predictions]
        if not graded:
            continue
        sizes = {i: f.box[2] * f.box[3] for i, f in enumerate(result.faces)}
        graded.sort(key=lambda r: -sizes.get(r.face_index, 0))  # the largest face's answer, as skin val takes it
        scores.append(graded[0].predictions[args.head].score)
        if graded[0].face_index is not None:
            sides.append(min(result.faces[graded[0].face_index].box[2:]))
    manifest = load_bundle(args.bundle).manifest
    manifest["min_confidence"] = round(float(np.percentile(scores, args.percentile)), 3)
    if manifest.get("domain") == "face" and sides:
        manifest["min_face_px"] = int(min(sides) * 2 / 3)
    manifest["thresholds_measured"] = {"split": args.where, "answers": len(scores), "percentile": args.percentile}
    save_manifest(args.bundle, manifest)
    print(json.dumps({k: manifest.get(k) for k in ("min_confidence", "min_face_px", "thresholds_measured")}))


if __name__ == "__main__":
    main()
