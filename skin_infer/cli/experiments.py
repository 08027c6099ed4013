"""``skin sweep`` (Optuna hyper-parameter search over a trainer's options) and ``skin compare`` (runs side by side)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import app, err, fail, fail_on, need_extra
from .train import Track


@app.command("sweep")
def sweep(
    spec: Annotated[Path, typer.Argument(help="Sweep YAML: train:, search:, metric: (see docs/experiments.md).")],
    out: Annotated[Path, typer.Option(help="Sweep folder: the study (study.db), trials/, trials.csv, best.json.")],
    trials: Annotated[int, typer.Option(min=1, help="Finished trials the study should hold (more continue it).")],
    jobs: Annotated[int, typer.Option(min=1, help="Trials at once (threads; each uses the train: threads).")] = 1,
    track: Track = "mlflow",
    track_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (default: OUT/mlruns).")] = None,
) -> None:
    """Search a trainer's options with Optuna; each trial a run directory and a tracked run. Continues a study."""
    try:
        import optuna

        from ..train.sweep import SweepSpec, run_sweep
    except ImportError as exc:
        raise need_extra("track", "skin sweep", exc) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = run_sweep(SweepSpec.load(spec), out, trials, jobs, track, track_uri)
    except (ValueError, OSError) as exc:
        raise fail_on(exc) from None
    states = {}
    for t in study.trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    best = f"; best trial {study.best_trial.number}: {study.best_value:.4f} {study.best_params}" if done else ""
    err.print(f"{out}: {len(study.trials)} trial(s) ({summary}){best}; see {out / 'trials.csv'}", highlight=False)
    if not done:
        raise fail(f"no trial completed; the errors are in {out / 'trials.csv'}", 1)


@app.command("compare")
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Run directories, or sweep folders (all their trials).")],
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a Markdown table instead.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write the val curves of every run in one figure here.")] = None,
) -> None:
    """The options that differ between runs, their metrics side by side, and their val curves."""
    from rich.console import Console
    from rich.table import Table

    from ..train.compare import load_runs, table
    from ..train.compare import markdown as to_markdown

    try:
        loaded = load_runs(runs)
        columns, rows = table(loaded)
        if plot is not None:
            from ..train.compare import plot as draw

            try:
                draw(loaded, plot)
            except ImportError as exc:
                raise need_extra("train", "--plot", exc) from None
    except (ValueError, OSError) as exc:
        raise fail_on(exc) from None
    if markdown:
        typer.echo(to_markdown(columns, rows), nl=False)
        return
    shown = Table(title=f"{len(loaded)} run(s)")
    for column in columns:
        shown.add_column(column, overflow="fold")
    for row in rows:
        shown.add_row(*row)
    Console().print(shown)
