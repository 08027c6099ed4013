"""Does a classifier need colour? Its val split goes through the product path twice, as photographed and turned
gray (luminance only, as a black-and-white photo), and the drop in balanced accuracy is written into its
manifest: ``needs_colour`` when gray costs more than MAX_DROP. The runtime then gives colourless photos no
answer from that model, with the reason (docs/routing.md).

    python scripts/colour_dependence.py models/acne04-mobilenetv2 ../shared/data/acne04/labels.csv \\
        --head acne --label-column grade --where split=val
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import cv2

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
    args = ap.parse_args()
    samples = read_labels(args.labels, args.label_column, where=args.where)
    manifest = load_bundle(args.bundle).manifest
    head = next(h for h in manifest["heads"] if h["name"] == args.head)
    with tempfile.TemporaryDirectory() as tmp:  # a copy that answers gray photos too, while measuring them
        bundle = Path(shutil.copytree(args.bundle, Path(tmp) / args.bundle.name))
        measured = load_bundle(bundle).manifest
        measured.pop("needs_colour", None)
        save_manifest(bundle, measured)
        analyzer = Analyzer(model=str(bundle), threads=2)
        figures = {}
        for name, sources in (
            ("colour", [s.file for s in samples]),
            ("gray", map(gray_jpeg, (s.file for s in samples))),
        ):
            answers = [answer_of(r, args.head, args.bundle.name) for r in analyzer.stream(sources)]
            report = evaluate(samples, answers, head["labels"], head.get("ordinal", False))
            figures[name] = {k: report[k] for k in ("balanced_accuracy", "accuracy", "answered")}
    drop = figures["colour"]["balanced_accuracy"] - figures["gray"]["balanced_accuracy"]
    manifest["needs_colour"] = bool(drop > MAX_DROP)
    manifest["needs_colour_measured"] = {"split": args.where, "n": len(samples), **figures, "max_drop": MAX_DROP}
    save_manifest(args.bundle, manifest)
    print(json.dumps({k: manifest[k] for k in ("needs_colour", "needs_colour_measured")}))


if __name__ == "__main__":
    main()
