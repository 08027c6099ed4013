"""Do the colour measures tell real differences apart, and how repeatable are they? (docs/measures.md)

Everything goes through the product (``Analyzer`` with the shipped defaults, ``--light scene``, so each region
carries the corrected and the captured values), on the face_skin region of the largest face:
1. validity: Spearman rho of each redness measure against the ACNE04 grade (real photos), the AUC of each for
   rosacea vs normal on rosacea_synthetic (synthetic faces: development only, never a claim), the FairFace
   ITA° per method;
2. well-lit photos (FairFace, CelebAMask-HQ test): how far the correction moves ITA° and a*, and the tone bands
   it changes;
3. repeatability: the coefficient of variation (sd / mean of the re-measured values, per face, median over faces)
   under JPEG re-encoding (q75), +-10 % scale, a 4-pixel shift and a 5 % crop, and a whole-photo cast; and the
   spread between neighbouring photos of one ACNE04 group (the same person, another side or moment).

    python scripts/measure_validity.py [--acne-every 2] [--repeat 40]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
from pathlib import Path

import cv2
import numpy as np
from scipy.stats import mannwhitneyu, spearmanr

from skin_infer import Analyzer
from skin_infer.runtime.light import relight

SHARED = Path(os.environ.get("SKIN_INFER_SHARED", Path(__file__).resolve().parents[2] / "shared"))
REDNESS = ("redness_a", "redness_a_captured", "redness_index")
REPEATED = ("redness_index", "redness_a", "redness_a_captured", "ita_deg", "ita_deg_captured", "lab_l")


def face_skin(result) -> dict | None:
    """The face_skin measures of the largest face."""
    regions = [r for r in result.regions if r.name == "face_skin" and r.measures and r.face_index is not None]
    if not regions:
        return None
    size = lambda r: result.faces[r.face_index].box[2] * result.faces[r.face_index].box[3]  # noqa: E731
    return max(regions, key=size).measures


def auc(positive: list[float], negative: list[float]) -> float:
    return mannwhitneyu(positive, negative).statistic / (len(positive) * len(negative))


def validity(analyzer: Analyzer, acne_every: int) -> None:
    rows = list(csv.DictReader((SHARED / "data/acne04/labels.csv").open()))[::acne_every]
    grades, values = [], {k: [] for k in REDNESS}
    for row in rows:
        m = face_skin(analyzer(SHARED / "data/acne04" / row["file"]))
        if m and all(m.get(k) is not None for k in REDNESS):
            grades.append(int(row["grade"]))
            for k in REDNESS:
                values[k].append(m[k])
    rosacea = list(csv.DictReader((SHARED / "data/rosacea_synthetic/labels.csv").open()))
    labelled = {k: {"rosacea": [], "normal": []} for k in REDNESS}
    for row in rosacea:
        m = face_skin(analyzer(SHARED / "data/rosacea_synthetic" / row["file"]))
        if m and all(m.get(k) is not None for k in REDNESS):
            for k in REDNESS:
                labelled[k][row["label"]].append(m[k])
    n_ros = len(labelled[REDNESS[0]]["rosacea"]), len(labelled[REDNESS[0]]["normal"])
    print(f"| measure | Spearman rho vs ACNE04 grade (n={len(grades)}) | AUC rosacea vs normal, synthetic "
          f"(n={n_ros[0]}+{n_ros[1]}) |")  # fmt: skip
    print("|---|---|---|")
    for k in REDNESS:
        rho = spearmanr(grades, values[k])
        print(f"| {k} | {rho.statistic:.2f} (p={rho.pvalue:.1g}) | "
              f"{auc(labelled[k]['rosacea'], labelled[k]['normal']):.2f} |")  # fmt: skip
    print()


def well_lit(analyzer: Analyzer) -> None:
    files = (
        sorted((SHARED / "data/faces/photos").glob("fairface_*"))
        + sorted((SHARED / "data/celebamask_mini/test/images").glob("*.jpg"))[:40]
    )
    ita, red, bands, n = [], [], 0, 0
    fair = []
    for path in files:
        m = face_skin(analyzer(path))
        if not m or m["ita_deg"] is None or m["ita_deg_captured"] is None:
            continue
        n += 1
        ita.append(abs(m["ita_deg"] - m["ita_deg_captured"]))
        red.append(abs(m["redness_a"] - m["redness_a_captured"]))
        bands += m["skin_tone"] != m["skin_tone_captured"]
        if path.name.startswith("fairface_"):
            fair.append(f"{path.stem.split('_')[1]} {m['ita_deg_captured']} -> {m['ita_deg']}")
    print(f"Well-lit photos (n={n}): the scene correction moves ITA° by a median {statistics.median(ita):.1f}° "
          f"(max {max(ita):.1f}°), a* by {statistics.median(red):.1f}, and changes {bands} tone band(s).")  # fmt: skip
    print("FairFace ITA° captured -> corrected: " + "; ".join(fair) + "\n")


def variants(image: np.ndarray) -> dict[str, np.ndarray]:
    h, w = image.shape[:2]
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 75])
    shift = np.float32([[1, 0, 4], [0, 1, 4]])
    c = max(1, int(0.05 * min(h, w)))
    return {
        "JPEG q75": cv2.imdecode(data, cv2.IMREAD_COLOR),
        "scale 0.9": cv2.resize(image, None, fx=0.9, fy=0.9, interpolation=cv2.INTER_AREA),
        "scale 1.1": cv2.resize(image, None, fx=1.1, fy=1.1, interpolation=cv2.INTER_LINEAR),
        "shift 4 px": cv2.warpAffine(image, shift, (w, h), borderMode=cv2.BORDER_REFLECT),
        "crop 5 %": image[c : h - c, c : w - c],
        "warm cast": relight(image, (1.2, 1.0, 0.8)),
    }


def cv(values: list[float]) -> float:
    return statistics.pstdev(values) / abs(statistics.mean(values)) * 100


def repeatability(analyzer: Analyzer, count: int) -> None:
    rows = [r for r in csv.DictReader((SHARED / "data/acne04/labels.csv").open()) if r["split"] == "test"]
    files = [SHARED / "data/acne04" / r["file"] for r in rows[:: max(1, len(rows) // count)]][:count]
    files += sorted((SHARED / "data/faces/photos").glob("fairface_*"))
    kinds = list(variants(np.zeros((16, 16, 3), np.uint8)))
    per = {(k, v): [] for k in REPEATED for v in [*kinds, "all"]}
    degrees = {(k, v): [] for k in ("ita_deg", "ita_deg_captured") for v in kinds}
    for path in files:
        image = cv2.imread(str(path))
        base = face_skin(analyzer(image[:, :, ::-1]))
        if not base:
            continue
        seen = {k: [base[k]] for k in REPEATED}
        for kind, changed in variants(image).items():
            m = face_skin(analyzer(changed[:, :, ::-1]))
            for k in REPEATED:
                if m and m.get(k) is not None and base.get(k) is not None:
                    per[(k, kind)].append(abs(m[k] - base[k]) / max(abs(base[k]), 1e-6) * 100)
                    seen[k].append(m[k])
                    if (k, kind) in degrees:
                        degrees[(k, kind)].append(abs(m[k] - base[k]))
        for k in REPEATED:
            if len(seen[k]) > 2 and None not in seen[k]:
                per[(k, "all")].append(cv(seen[k]))
    print(
        f"Repeatability (n={len(files)} faces): median |change| in % of the value per re-take, and the median "
        "coefficient of variation over all re-takes of a face (ITA° also in degrees below)\n"
    )
    print("| measure | " + " | ".join(kinds) + " | CV over all |")
    print("|---" * (len(kinds) + 2) + "|")
    for k in REPEATED:
        cells = [f"{statistics.median(per[(k, v)]):.1f} %" if per[(k, v)] else "-" for v in [*kinds, "all"]]
        print(f"| {k} | " + " | ".join(cells) + " |")
    for k in ("ita_deg", "ita_deg_captured"):
        cells = [f"{statistics.median(degrees[(k, v)]):.2f}°" if degrees[(k, v)] else "-" for v in kinds]
        print(f"| {k}, median abs change in degrees | " + " | ".join(cells) + " | |")
    groups: dict[str, list[Path]] = {}
    for r in csv.DictReader((SHARED / "data/acne04/labels.csv").open()):
        groups.setdefault(r["group"], []).append(SHARED / "data/acne04" / r["file"])
    spreads = {k: [] for k in REPEATED}
    ita_sd = []
    for _group, paths in list(groups.items())[::4]:
        measured = [m for p in paths[:4] if (m := face_skin(analyzer(p)))]
        for k in REPEATED:
            values = [m[k] for m in measured if m.get(k) is not None]
            if len(values) >= 2:
                spreads[k].append(cv(values))
        itas = [m["ita_deg"] for m in measured if m.get("ita_deg") is not None]
        if len(itas) >= 2:
            ita_sd.append(statistics.pstdev(itas))
    print("\nNeighbouring photos of one ACNE04 group (the same person; other sides and moments, so this bounds the "
          "measure's repeatability from above): median CV " +
          ", ".join(f"{k} {statistics.median(v):.1f} %" for k, v in spreads.items() if v) +
          f"; median sd of ITA° {statistics.median(ita_sd):.1f}°\n")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--acne-every", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=40)
    args = ap.parse_args()
    analyzer = Analyzer(model="none", threads=2, light="scene")
    print("## Validity\n")
    validity(analyzer, args.acne_every)
    print("## Well-lit photos\n")
    well_lit(analyzer)
    print("## Repeatability\n")
    repeatability(analyzer, args.repeat)


if __name__ == "__main__":
    main()
