"""Write the acne-grader study's table (docs/acne.md) from the runs' metrics.json files.

python scripts/acne_table.py RUN_DIR [RUN_DIR ...] --out docs/acne.md

Rows are keyed by run name: a run given again replaces its row, rows of runs not given are kept (so a study
can grow by a few recipes without re-running the others), and the selection is made over every row.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

LOSSES = {"ce": "cross-entropy", "cb_focal": "class-balanced focal", "masked_ls": "ordinal (masked_ls)"}
HEADER = [
    "| run | recipe | input | val balanced acc. | test accuracy | test balanced acc. | test MAE (grades) | test QWK | "
    "test adjacent recall | epoch |",
    "|---|---|---|---|---|---|---|---|---|---|",
]
START, END = "<!-- table -->", "<!-- /table -->"


def describe(cfg: dict) -> str:
    text = LOSSES.get(cfg["loss"], cfg["loss"])
    return text + (" + balanced sampler" if cfg["sampler"] == "balanced" else "")


def row(run: Path) -> str:
    metrics, cfg = json.loads((run / "metrics.json").read_text()), json.loads((run / "config.json").read_text())
    test, val = metrics["test"]["heads"]["acne"], metrics["val"]["heads"]["acne"]
    return (
        f"| `{run.name}` | {describe(cfg)} | {cfg['img_size']} px | {val['balanced_accuracy']:.3f} | "
        f"{test['accuracy']:.3f} | {test['balanced_accuracy']:.3f} | {test['mae']:.3f} | {test['qwk']:.3f} | "
        f"{test['adjacent_recall']:.3f} | {metrics['best_epoch']} |"
    )


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    text = args.out.read_text() if args.out.is_file() else f"# Acne grader\n\n{START}\n{END}\n"
    start, end = text.index(START), text.index(END)
    rows = {cells(line)[0].strip("`"): line for line in text[start:end].splitlines() if line.startswith("| `")}
    rows.update({run.name: row(run) for run in args.runs if (run / "metrics.json").is_file()})
    best = max(rows, key=lambda name: float(cells(rows[name])[3]), default=None)
    body = "\n".join(HEADER + list(rows.values()))
    chosen = f"\n\nSelected on validation balanced accuracy: `{best}`.\n" if best else "\n"
    args.out.write_text(text[: start + len(START)] + "\n" + body + chosen + text[end:])
    print(body)


if __name__ == "__main__":
    main()
