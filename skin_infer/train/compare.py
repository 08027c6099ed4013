"""``skin compare RUN_DIR...``: runs side by side: the options that differ, the metrics, the val curves in one plot.

A run directory is any trainer's (``config.json``, ``metrics.json``, ``log.csv``); a sweep folder (``skin sweep``)
stands for all its trials. Torch-free: it only reads files (the plot needs matplotlib).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checks import DataError

MAX_DEPTH = 2  # metrics.json sections flattened this deep (test.balanced_accuracy, val.map50)


@dataclass
class Run:
    name: str
    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any]
    log: list[dict[str, str]]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not readable JSON ({exc}); the run directory is damaged.") from None


def load_runs(paths: list[Path]) -> list[Run]:
    """The runs named: run directories, and every trial of a sweep folder (``trials/*``)."""
    runs = []
    for path in paths:
        path = Path(path)
        if (path / "trials").is_dir() and not (path / "config.json").is_file():
            children = sorted(p for p in (path / "trials").iterdir() if (p / "config.json").is_file())
            if not children:
                raise DataError(f"{path}: a sweep folder with no trial run yet.")
            runs += [_load(child, f"{path.name}/{child.name}") for child in children]
        elif (path / "config.json").is_file():
            runs.append(_load(path, path.name))
        else:
            raise DataError(f"{path}: not a run directory (no config.json) nor a sweep folder (no trials/).")
    return runs


def _load(path: Path, name: str) -> Run:
    log_path = path / "log.csv"
    log = list(csv.DictReader(log_path.open(encoding="utf-8"))) if log_path.is_file() else []
    return Run(name, path, _read_json(path / "config.json"), _read_json(path / "metrics.json"), log)


def flat_metrics(metrics: dict, prefix: str = "", depth: int = 0) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, dict) and depth < MAX_DEPTH:
            out.update(flat_metrics(value, f"{prefix}{key}.", depth + 1))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = value
    return out


def table(runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    """(columns, rows): per run its name, the options that differ between the runs, then the metrics."""
    options = sorted({k for r in runs for k in r.config})
    differ = [k for k in options if len({json.dumps(r.config.get(k), sort_keys=True) for r in runs}) > 1]
    flat = [flat_metrics(r.metrics) for r in runs]
    metrics = [k for k in dict.fromkeys(k for f in flat for k in f) if not k.endswith(("_epoch", "epochs_run"))]
    metrics = ["best_epoch", *metrics] if any("best_epoch" in f for f in flat) else metrics
    rows = []
    for run, values in zip(runs, flat, strict=True):
        shown = [_cell(run.config.get(k)) for k in differ]
        rows.append([run.name, *shown, *(_cell(values.get(k)) for k in metrics)])
    return ["run", *differ, *metrics], rows


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return value if isinstance(value, str) else json.dumps(value)


def markdown(columns: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def plot(runs: list[Run], path: Path) -> Path:
    """Every ``val_*`` column of the runs' logs against the epoch, one panel per column, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..runtime.files import atomic_write

    columns = list(dict.fromkeys(k for r in runs for row in r.log[:1] for k in row if k.startswith("val_")))
    if not columns:
        raise DataError("no val_* columns in these runs' log.csv files: nothing to plot.")
    fig, axes = plt.subplots(1, len(columns), figsize=(5 * len(columns), 3.6), squeeze=False)
    for ax, column in zip(axes[0], columns, strict=True):
        for run in runs:
            points = [(int(r["epoch"]), float(r[column])) for r in run.log if r.get(column) not in (None, "")]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=run.name)
        ax.set_title(column)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip(".") or "png", dpi=110)
    plt.close(fig)
    return atomic_write(path, buffer.getvalue())
