"""The benchmark table: printed, and written as JSON (a list of rows), Markdown and a PNG chart."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from ..runtime.files import atomic_write

SEED_CLAIM = (
    "The seed project reported efficientnet_b0 at 46.6 ms in PyTorch vs 6.3 ms in ONNX Runtime (7.4x) on an "
    "unnamed CPU; published measurements on other CPUs put the ratio at 2.3-2.9x."
)
COLUMNS = (
    "model",
    "engine",
    "precision",
    "batch",
    "input",
    "size MB",
    "accuracy / agreement",
    "p50 ms",
    "p90 ms",
    "img/s",
    "speed-up vs torch",
    "peak MB",
)


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _cells(row: dict) -> list[str]:
    quality = row.get("balanced_accuracy")
    if quality is not None:
        quality_text = f"bal. acc {quality:.3f}"
    elif "agreement" in row:
        quality_text = f"top-1/pixels {row['agreement']:.3f}"
        if row.get("agreement_vs_largest") is not None and row["agreement_vs_largest"] < 1:
            quality_text += f" (vs largest {row['agreement_vs_largest']:.3f})"
    else:
        quality_text = "-"
    speedup = row.get("speedup_vs_torch")
    return [
        row["model"],
        row["engine"],
        row["precision"],
        str(row["batch"]),
        _fmt(row.get("input") or None),
        _fmt(row.get("size_mb"), 2),
        quality_text,
        _fmt(row.get("p50_ms"), 2),
        _fmt(row.get("p90_ms"), 2),
        _fmt(row.get("images_per_s")),
        f"{speedup:.2f}x" if speedup else "-",
        _fmt(row.get("peak_rss_mb"), 0),
    ]


def table(rows: list[dict]) -> Table:
    out = Table(*COLUMNS, title="skin bench", header_style="bold")
    for row in rows:
        out.add_row(*_cells(row))
    return out


def headline(rows: list[dict]) -> str:
    ours = next(
        (
            r
            for r in rows
            if r["model"] == "efficientnet_b0"
            and r["engine"] == "onnxruntime"
            and r["precision"] == "fp32"
            and r["batch"] == 1
        ),
        None,
    )
    torch_row = next(
        (r for r in rows if r["model"] == "efficientnet_b0" and r["engine"] == "torch" and r["batch"] == 1), None
    )
    if not ours or not torch_row:
        return SEED_CLAIM
    return (
        f"{SEED_CLAIM} Here: {torch_row['p50_ms']:.1f} ms vs {ours['p50_ms']:.1f} ms "
        f"({ours['speedup_vs_torch']:.1f}x), {ours['threads']} threads each, on {ours['system']['cpu']}."
    )


def markdown(rows: list[dict], notes: list[str]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    if rows:
        system = rows[0]["system"]
        versions = ", ".join(f"{k} {v}" for k, v in system["versions"].items())
        lines += ["", f"{system['cpu']}, {system['cores']} cores, {rows[0]['threads']} threads per engine; {versions}."]
    lines += ["", headline(rows)] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def write_json(rows: list[dict], path: Path) -> None:
    atomic_write(path, json.dumps(rows, indent=2) + "\n")


def write_chart(rows: list[dict], path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in rows if r.get("speedup_vs_torch") is not None and r["batch"] == 1]
    models = list(dict.fromkeys(f"{r['model']}@{r['input']}" for r in measured))
    engines = list(dict.fromkeys(f"{r['engine']} {r['precision']}" for r in measured))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(models)), 4))
    width = 0.8 / max(1, len(engines))
    for j, engine in enumerate(engines):
        values = [
            next(
                (
                    r["p50_ms"]
                    for r in measured
                    if f"{r['model']}@{r['input']}" == m and f"{r['engine']} {r['precision']}" == engine
                ),
                0,
            )
            for m in models
        ]
        ax.bar([i + j * width for i in range(len(models))], values, width, label=engine)
    ax.set_xticks([i + width * (len(engines) - 1) / 2 for i in range(len(models))], models, rotation=20, ha="right")
    ax.set_ylabel("p50 latency, batch 1 (ms, log)")
    ax.set_yscale("log")
    ax.legend()
    ax.set_title("PyTorch vs ONNX Runtime, same threads")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write(path, buffer.getvalue())


def check_floor(rows: list[dict], floor: dict[str, float]) -> list[str]:
    """Failures: fp32 ONNX Runtime at batch 1 below the speed-up floor kept for that model."""
    failures = []
    for model, minimum in floor.items():
        row = next(
            (
                r
                for r in rows
                if r["model"] == model
                and r["engine"] == "onnxruntime"
                and r["precision"] == "fp32"
                and r["batch"] == 1
                and r.get("speedup_vs_torch")
            ),
            None,
        )
        if row is None:
            failures.append(f"{model}: no measurement to check against the floor {minimum}x")
        elif row["speedup_vs_torch"] < minimum:
            failures.append(
                f"{model}: ONNX Runtime speed-up {row['speedup_vs_torch']:.2f}x is below the floor {minimum:.2f}x"
            )
    return failures


def compare_previous(rows: list[dict], previous: list[dict]) -> list[str]:
    """Speed-up changes against an earlier run of the same rows."""

    def key(r):
        return (r["model"], r["engine"], r["precision"], r["batch"], r.get("input"))

    before = {key(r): r for r in previous if r.get("speedup_vs_torch")}
    lines = []
    for row in rows:
        old = before.get(key(row))
        if old and row.get("speedup_vs_torch") and row["engine"] != "torch":
            lines.append(
                f"{row['model']} {row['precision']} batch {row['batch']}: speed-up "
                f"{old['speedup_vs_torch']:.2f}x -> {row['speedup_vs_torch']:.2f}x"
            )
    return lines
