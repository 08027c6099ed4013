"""``skin bench``: PyTorch vs ONNX Runtime on the same work."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from .common import app, err


@app.command("bench")
def bench(
    quick: Annotated[bool, typer.Option(help="The short version (what CI runs).")] = False,
    threads: Annotated[int, typer.Option(min=1, help="Intra-op threads, the same for every engine.")] = 2,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the rows as JSON.")] = None,
    markdown_path: Annotated[Path | None, typer.Option("--markdown", help="Write the table as Markdown.")] = None,
    chart: Annotated[Path | None, typer.Option(help="Write a PNG chart of latency per engine.")] = None,
    floor: Annotated[Path | None, typer.Option(help="JSON {model: minimum speed-up}; exit 1 below it.")] = None,
    history: Annotated[Path | None, typer.Option(help="Folder keeping the last run to compare against.")] = None,
    shared: Annotated[
        Path | None,
        typer.Option(help="Shared data folder (real images and YuNet); default $SKIN_INFER_SHARED or ../shared."),
    ] = None,
) -> None:
    """PyTorch vs ONNX Runtime on the same work: latency, throughput, agreement, memory."""
    import os
    import shutil

    from rich.console import Console

    from ..bench import report, suite
    from ..runtime.defaults import default_models

    shared = shared or Path(os.environ.get("SKIN_INFER_SHARED", "../shared"))
    plan = suite.Plan.quick(threads) if quick else suite.Plan(threads=threads)
    start = time.perf_counter()
    rows, notes = suite.run(
        plan,
        shared if shared.is_dir() else None,
        default_models(),
        log=lambda m: err.print(m, style="dim", highlight=False),
    )
    Console(width=max(shutil.get_terminal_size().columns, 180)).print(report.table(rows))
    for line in [report.headline(rows), *notes]:
        err.print(line, highlight=False)
    if json_path:
        report.write_json(rows, json_path)
    if markdown_path:
        from ..runtime.files import atomic_write

        atomic_write(markdown_path, report.markdown(rows, notes))
    if chart:
        report.write_chart(rows, chart)
    if history:
        history.mkdir(parents=True, exist_ok=True)
        last = history / ("quick.json" if quick else "full.json")
        if last.is_file():
            for line in report.compare_previous(rows, json.loads(last.read_text())):
                err.print(f"since last run: {line}", highlight=False)
        report.write_json(rows, last)
    err.print(f"{len(rows)} rows in {time.perf_counter() - start:.0f} s", highlight=False)
    if floor:
        failures = report.check_floor(rows, json.loads(floor.read_text()))
        for failure in failures:
            err.print(f"below floor: {failure}", style="red", highlight=False)
        if failures:
            raise typer.Exit(1)
