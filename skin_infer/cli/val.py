"""``skin val LABELS.csv --head NAME --label-column COL``: the accuracy users get, on the path skin-infer runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..runtime.options import AnalysisOptions
from .common import app, err, fail
from .options import analysis_options


@app.command("val")
@analysis_options(exclude=("explain",))
def val(
    labels_csv: Annotated[Path, typer.Argument(help="CSV with an image column and a label column.")],
    head: Annotated[str, typer.Option(help="The model head to score (acne, dx, domain ...).")],
    label_column: Annotated[str, typer.Option(help="The CSV column with the true labels.")],
    image_column: Annotated[
        str | None, typer.Option(help="The CSV column with image paths (default: the first of file, path, image).")
    ] = None,
    root: Annotated[
        Path | None, typer.Option(help="Folder the image paths are relative to (default: the CSV's).")
    ] = None,
    where: Annotated[
        list[str] | None, typer.Option(help="Only rows where COLUMN=VALUE (repeat to combine), e.g. split=test.")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON here.")] = None,
    plots: Annotated[Path | None, typer.Option(help="Folder for the confusion-matrix PNG.")] = None,
    predictions: Annotated[Path | None, typer.Option(help="Also write every image's result here (.jsonl).")] = None,
    options: AnalysisOptions = AnalysisOptions(),
) -> None:
    """Run the same analysis as skin-infer on labelled images and report accuracy (unanswered images count as
    wrong), per-class recall, macro F1, MAE/QWK for ordinal heads and the confusion matrix."""
    from ..runtime import Analyzer, SkinInferError
    from ..runtime.evaluation import DOMAIN_HEAD, answer_of, confusion_png, evaluate, read_labels
    from ..runtime.files import atomic_write

    try:
        samples = read_labels(labels_csv, label_column, image_column, root, where or [])
        analyzer = Analyzer(options)
    except SkinInferError as exc:
        raise fail(str(exc)) from None
    models = [*analyzer.classifiers, *([analyzer.pipeline.domain_model()] if head == DOMAIN_HEAD else [])]
    owner = next((c for c in models for h in c.heads if h.name == head), None)
    if owner is None:
        heads = ", ".join(h for h, _ in analyzer.heads) or "none"
        raise fail(f"no model answers head {head!r} (these do: {heads}); give its bundle with --model.")
    spec = next(h for h in owner.heads if h.name == head)
    answers, records = [], []
    from rich.progress import Progress

    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(f"val {head}", total=len(samples))
        for result in analyzer.stream([s.file for s in samples]):
            answers.append(answer_of(result, head, owner.name))
            if predictions:
                records.append(json.dumps(result.to_dict(), ensure_ascii=False))
            progress.advance(task)
    try:
        report = evaluate(samples, answers, list(spec.labels), spec.ordinal)
    except SkinInferError as exc:
        raise fail(str(exc)) from None
    report = {"head": head, "model": owner.name, "csv": str(labels_csv), "where": where or [], **report}
    _print(report)
    if json_out:
        atomic_write(json_out, json.dumps(report, indent=2) + "\n")
    if plots:
        plots.mkdir(parents=True, exist_ok=True)
        atomic_write(plots / f"confusion_{head}.png", confusion_png(report, f"{owner.name}: {head}"))
    if predictions:
        atomic_write(predictions, "\n".join(records) + "\n")


def _print(report: dict) -> None:
    out = Console()
    table = Table(title=f"skin val: {report['model']} / {report['head']} ({report['n']} images)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("n", "answered", "accuracy", "balanced_accuracy", "answered_accuracy", "macro_f1", "mae", "qwk"):
        if key in report:
            table.add_row(key, str(report[key]))
    for reason, count in report["not_answered"].items():
        table.add_row(f"not answered: {reason}", str(count))
    for label, recall in report["recall"].items():
        table.add_row(f"recall {label}", str(recall))
    out.print(table)
    matrix = Table(title="confusion (rows: truth, columns: prediction)")
    matrix.add_column("truth")
    for column in report["confusion_columns"]:
        matrix.add_column(column, justify="right")
    for label, row in zip(report["labels"], report["confusion"], strict=True):
        matrix.add_row(label, *map(str, row))
    out.print(matrix)
