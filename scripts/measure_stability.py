"""How much do the colour measures move when only the light changes, and do they still mean something?

For every light-correction method (runtime/light.py), on real face photos from ../shared:
1. stability: each photo re-rendered under simulated casts (in linear RGB: warmer and cooler white balance, a green
   tint, one stop darker; and a JPEG re-encode), the face-skin ITA° and a* compared with the same photo as it was;
2. validity: a* against ACNE04 acne grades, ITA° across the FairFace samples.
Prints the markdown tables of docs/measures.md.

    python scripts/measure_stability.py [--per-set 30] [--acne-every 3]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
from pathlib import Path

import cv2
import numpy as np
from scipy.stats import spearmanr

from skin_infer import Analyzer
from skin_infer.runtime.light import METHODS, relight

SHARED = Path(os.environ.get("SKIN_INFER_SHARED", Path(__file__).resolve().parents[2] / "shared"))
CASTS = {  # linear-RGB gains: what a different lamp or camera white balance does
    "warm": (1.25, 1.0, 0.75),
    "cool": (0.8, 1.0, 1.25),
    "green": (0.85, 1.15, 0.85),
    "-1 EV": (0.5, 0.5, 0.5),
}
JPEG_QUALITY = 60


def variants(image: np.ndarray) -> dict[str, np.ndarray]:
    out = {name: relight(image, gains) for name, gains in CASTS.items()}
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    out[f"JPEG q{JPEG_QUALITY}"] = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return out


def face_skin(result) -> dict[tuple, dict]:
    """face box -> face_skin measures"""
    out = {}
    for region in result.regions:
        if region.name == "face_skin" and region.measures and region.face_index is not None:
            out[tuple(result.faces[region.face_index].box)] = region.measures
    return out


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


def pairs(reference: dict, other: dict):
    for box, measures in reference.items():
        best = max(other, key=lambda b: iou(box, b), default=None)
        if best is not None and iou(box, best) > 0.5:
            yield measures, other[best]


def photos(per_set: int) -> list[Path]:
    faces = sorted((SHARED / "data/faces/photos").iterdir())
    celeb = sorted((SHARED / "data/celebamask_mini/test/images").glob("*.jpg"))[:per_set]
    rows = [r for r in csv.DictReader((SHARED / "data/acne04/labels.csv").open()) if r["split"] == "test"]
    acne = [SHARED / "data/acne04" / r["file"] for r in rows[:: max(1, len(rows) // per_set)][:per_set]]
    return faces + celeb + acne


def median(values) -> str:
    return f"{statistics.median(values):.1f}" if values else "-"


def stability(analyzer: Analyzer, files: list[Path]) -> None:
    # per method, per cast: |dITA|, |da*|, band changes, faces compared; "captured" is the uncorrected camera value
    stats = {}
    used = {method: {} for method in METHODS}  # method asked -> method that gave the light -> photos
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        for method in METHODS[:-1]:
            analyzer.pipeline.light = method
            result = analyzer(image[:, :, ::-1])
            used[method][result.light.method] = used[method].get(result.light.method, 0) + 1
            base = face_skin(result)
            kinds = ((method, ""), ("as captured", "_captured")) if method == METHODS[0] else ((method, ""),)
            for cast, changed in variants(image).items():
                for a, b in pairs(base, face_skin(analyzer(changed[:, :, ::-1]))):
                    for kind, suffix in kinds:
                        s = stats.setdefault((kind, cast), {"ita": [], "a": [], "band": 0, "n": 0, "null": 0})
                        s["n"] += 1
                        s["a"].append(abs(a["redness_a" + suffix] - b["redness_a" + suffix]))
                        if a["ita_deg" + suffix] is None or b["ita_deg" + suffix] is None:
                            s["null"] += 1
                            continue
                        s["ita"].append(abs(a["ita_deg" + suffix] - b["ita_deg" + suffix]))
                        s["band"] += a["skin_tone" + suffix] != b["skin_tone" + suffix]
    casts = list(variants(np.zeros((8, 8, 3), np.uint8)))
    print("| method | " + " | ".join(casts) + " | all |")
    print("|---" * (len(casts) + 2) + "|")
    for kind in ("as captured", *METHODS[:-1]):
        cells = []
        for cast in [*casts, None]:
            chosen = [s for (k, c), s in stats.items() if k == kind and (cast is None or c == cast)]
            ita = [v for s in chosen for v in s["ita"]]
            red = [v for s in chosen for v in s["a"]]
            band = sum(s["band"] for s in chosen)
            cells.append(f"{median(ita)}° / {median(red)} / {band} of {len(ita)}")
        print(f"| {kind} | " + " | ".join(cells) + " |")
    print("\ncells: median |ΔITA°| / median |Δa*| / tone-band changes of faces compared\n")
    for method in METHODS[:-1]:
        print(f"- {method}: the light came from " + ", ".join(f"{k} on {v} photos" for k, v in used[method].items()))
    print()


def validity(analyzer: Analyzer, acne_every: int) -> None:
    rows = list(csv.DictReader((SHARED / "data/acne04/labels.csv").open()))[::acne_every]
    fair = sorted((SHARED / "data/faces/photos").glob("fairface_*"))
    print("| method | Spearman a* vs grade | mean a* by grade 0 / 1 / 2 / 3 | FairFace ITA° (" +
          ", ".join(p.stem.split("_")[1] for p in fair) + ") |")  # fmt: skip
    print("|---|---|---|---|")
    for method in ("none", *METHODS[:-1]):
        analyzer.pipeline.light = method
        grades, reds = [], []
        for row in rows:
            measures = list(face_skin(analyzer(SHARED / "data/acne04" / row["file"])).values())
            if measures:
                grades.append(int(row["grade"]))
                reds.append(measures[0]["redness_a"])
        by_grade = [np.mean([r for g, r in zip(grades, reds, strict=True) if g == k]) for k in range(4)]
        itas = [next(iter(face_skin(analyzer(p)).values()), {}).get("ita_deg") for p in fair]
        rho = spearmanr(grades, reds)
        print(f"| {method if method != 'none' else 'as captured'} | {rho.statistic:.2f} (n={len(grades)}, "
              f"p={rho.pvalue:.2g}) | {' / '.join(f'{v:.1f}' for v in by_grade)} | "
              f"{', '.join(str(v) for v in itas)} |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-set", type=int, default=30, help="photos from CelebAMask test and from ACNE04 test")
    ap.add_argument("--acne-every", type=int, default=3, help="validity: every Nth ACNE04 photo")
    ap.add_argument("--skip-validity", action="store_true")
    args = ap.parse_args()
    analyzer = Analyzer(model=None, threads=2)
    files = photos(args.per_set)
    print(f"## Stability: {len(files)} photos, {', '.join(CASTS)} and JPEG q{JPEG_QUALITY}\n")
    stability(analyzer, files)
    if not args.skip_validity:
        print("## Validity\n")
        validity(analyzer, args.acne_every)


if __name__ == "__main__":
    main()
