"""Write the acne-grader study's table (docs/acne.md) from the runs' metrics.json files.

python scripts/acne_table.py RUN_DIR [RUN_DIR ...] --out docs/acne.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

LOSSES = {"ce": "cross-entropy", "cb_focal": "class-balanced focal", "masked_ls": "ordinal (masked_ls)"}


def describe(cfg: dict) -> str:
    text = LOSSES.get(cfg["loss"], cfg["loss"])
    return text + (" + balanced sampler" if cfg["sampler"] == "balanced" else "")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    lines = [
        "| recipe | input | val balanced acc. | test accuracy | test balanced acc. | test MAE (grades) | test QWK | "
        "test adjacent recall | epoch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    best = None
    for run in args.runs:
        if not (run / "metrics.json").is_file():
            continue
        metrics, cfg = json.loads((run / "metrics.json").read_text()), json.loads((run / "config.json").read_text())
        test, val = metrics["test"]["heads"]["acne"], metrics["val"]["heads"]["acne"]
        lines.append(
            f"| {describe(cfg)} | {cfg['img_size']} px | {val['balanced_accuracy']:.3f} | {test['accuracy']:.3f} | "
            f"{test['balanced_accuracy']:.3f} | {test['mae']:.3f} | {test['qwk']:.3f} | "
            f"{test['adjacent_recall']:.3f} | {metrics['best_epoch']} |"
        )
        if best is None or val["balanced_accuracy"] > best[1]:
            best = (run.name, val["balanced_accuracy"])
    body = "\n".join(lines)
    text = args.out.read_text() if args.out.is_file() else "# Acne grader\n\n<!-- table -->\n<!-- /table -->\n"
    start, end = text.index("<!-- table -->"), text.index("<!-- /table -->")
    chosen = f"\n\nSelected on validation balanced accuracy: `{best[0]}`.\n" if best else "\n"
    args.out.write_text(text[: start + len("<!-- table -->")] + "\n" + body + chosen + text[end:])
    print(body)


if __name__ == "__main__":
    main()
