"""Leave-one-source-out validation of lesion recipes (issue 21): HAM10000's images come from four sources
(``source_dataset``: two Vienna dermoscopes, a Queensland practice, the Vienna DIAS set); each recipe is trained
on three and scored on every image of the fourth, through the product (``skin val``: the domain model routes,
then the lesion model answers), so a recipe is chosen for clinics it has not seen.

    python scripts/lesion_loso.py --out runs/loso --recipe base --recipe sog:--constancy=shades_of_gray

A recipe is NAME:OPTIONS (``skin train`` options, comma-separated) added to the common ones below. Each fold
writes its CSV (train/val = the other sources' own splits, test = the held-out source), run, fp32 bundle and
``val.json``; finished folds are skipped, so the script resumes. The table goes to ``OUT/loso.md``.

An ensemble NAME=A+B (``--ensemble``) is scored per fold as ``skin export ensemble`` of recipes A's and B's fold
bundles with flip TTA, the way the shipped lesion model is built (``scripts/train_lesion.sh``):

    python scripts/lesion_loso.py --recipe base: --recipe nosampler:--sampler=none --ensemble shipped=base+nosampler
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
from pathlib import Path

SOURCES = ("vidir_molemax", "vidir_modern", "rosendahl", "vienna_dias")
COMMON = [
    "--label", "dx", "--group-column", "lesion_id", "--model", "mobilenetv2_100", "--mean", "0.5,0.5,0.5",
    "--std", "0.5,0.5,0.5", "--batch-size", "32", "--lr", "6e-4", "--augment", "medium", "--seed", "0",
    "--loss", "cb_focal", "--sampler", "balanced",
]  # fmt: skip


def fold_csv(labels: Path, held_out: str, out: Path) -> Path:
    rows = list(csv.DictReader(labels.open()))
    for row in rows:
        row["split"] = "test" if row["source_dataset"] == held_out else row["split"]
        if row["source_dataset"] != held_out and row["split"] == "test":
            row["split"] = "unused"  # the other sources' own test images stay out of training and selection
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(r for r in rows if r["split"] != "unused")
    return out


def run(cmd: list[str], log: Path) -> None:
    with log.open("a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        subprocess.run(cmd, check=True, stdout=f, stderr=subprocess.STDOUT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--out", type=Path, default=Path("runs/loso"))
    ap.add_argument("--recipe", action="append", default=[], help="NAME:OPTIONS, e.g. sog:--constancy=shades_of_gray")
    ap.add_argument("--ensemble", action="append", default=[], help="NAME=A+B: soft voting of recipes A and B")
    ap.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES, help="the folds to run")
    ap.add_argument("--img-size", default="160")
    ap.add_argument("--epochs", default="4")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--init-weights", default="runs/mnv2_imagenet.safetensors")
    args = ap.parse_args()
    data = (args.shared / "data" / "ham10000").resolve()
    recipes = [r.partition(":") for r in args.recipe or ["base:"]]
    table = {}
    sources = [s for s in SOURCES if s in args.sources]

    def score(labels: Path, bundle: Path, report: Path, log: Path) -> None:
        run(["skin", "val", str(labels), "--root", str(data), "--head", "dx", "--label-column", "dx",
             "--where", "split=test", "--model", str(bundle), "--json", str(report)], log)  # fmt: skip

    for name, _, extra in recipes:
        for source in sources:
            fold = args.out / name / source
            report = fold / "val.json"
            if not report.exists():
                labels = fold_csv(data / "labels.csv", source, fold / "labels.csv")
                log = fold / "log.txt"
                if not (fold / "trained").exists():
                    if (fold / "run" / "state.pt").exists():  # an interrupted fold continues exactly
                        run(["skin", "train", "--resume", str(fold / "run")], log)
                    else:
                        run(["skin", "train", "--data", str(data), "--csv", str(labels.resolve()), *COMMON,
                             "--init-weights", args.init_weights, "--img-size", args.img_size,
                             "--epochs", args.epochs, "--threads", args.threads, "--out", str(fold / "run"),
                             *[o for o in extra.split(",") if o]], log)  # fmt: skip
                    (fold / "trained").touch()
                run(["skin", "export", "classifier", str(fold / "run"), "--out", str(fold / "bundle"),
                     "--precision", "fp32", "--domain", "dermoscopy", "--input", "image"], log)  # fmt: skip
                score(labels, fold / "bundle", report, log)
            table[name, source] = json.loads(report.read_text())
    for spec in args.ensemble:
        name, _, members = spec.partition("=")
        for source in sources:
            fold = args.out / name / source
            report = fold / "val.json"
            if not report.exists():
                fold.mkdir(parents=True, exist_ok=True)
                log = fold / "log.txt"
                bundles = [str(args.out / m / source / "bundle") for m in members.split("+")]
                run(["skin", "export", "ensemble", *bundles, "--out", str(fold / "bundle"), "--tta", "hflip"], log)
                score(args.out / members.split("+")[0] / source / "labels.csv", fold / "bundle", report, log)
            table[name, source] = json.loads(report.read_text())
        recipes.append((name, "=", members))
    lines = [
        "| recipe | " + " | ".join(f"{s} (n)" for s in sources) + " | mean balanced accuracy |",
        "|---" * (len(sources) + 2) + "|",
    ]
    for name, _, extra in recipes:
        cells = [table[name, s] for s in sources]
        mean = sum(c["balanced_accuracy"] for c in cells) / len(cells)
        lines.append(
            f"| {name} {extra} | "
            + " | ".join(f"{c['balanced_accuracy']:.3f} / acc {c['accuracy']:.3f} ({c['n']})" for c in cells)
            + f" | **{mean:.3f}** |"
        )
    (args.out / "loso.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
