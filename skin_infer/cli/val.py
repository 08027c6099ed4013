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
    labels_csv: Annotated[
        Path, typer.Argument(help="CSV with an image column (and a label column); with --boxes/--masks, or a folder.")
    ],
    head: Annotated[str | None, typer.Option(help="The model head to score (acne, dx, domain ...).")] = None,
    label_column: Annotated[str | None, typer.Option(help="The CSV column with the true labels.")] = None,
    boxes: Annotated[
        Path | None,
        typer.Option(help="Score the detector instead: folder of YOLO box files, <image stem>.txt per image."),
    ] = None,
    masks: Annotated[
        Path | None,
        typer.Option(help="Score the face parser instead: folder of label maps, <image stem>.png per image."),
    ] = None,
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
    wrong), per-class recall, macro F1, MAE/QWK for ordinal heads and the confusion matrix; with --boxes, the
    detector's mAP50 per type and the correlation of its counts with the human ones."""
    from ..runtime import Analyzer, SkinInferError
    from ..runtime.evaluation import DOMAIN_HEAD, answer_of, confusion_png, evaluate, image_folder, read_labels
    from ..runtime.files import atomic_write

    truth_files = boxes or masks
    if boxes is not None and masks is not None:
        raise fail("give one of --boxes (a detector) and --masks (a face parser)")
    if truth_files is None and (head is None or label_column is None):
        raise fail("give --head and --label-column (a classifier's labels), --boxes DIR (a detector's boxes) or "
                   "--masks DIR (a face parser's label maps)")  # fmt: skip
    try:
        if truth_files is not None and labels_csv.is_dir():
            samples = image_folder(labels_csv)
        else:
            samples = read_labels(labels_csv, None if truth_files else label_column, image_column, root, where or [])
        analyzer = Analyzer(options)
    except SkinInferError as exc:
        raise fail(str(exc)) from None
    if truth_files is not None:
        check = _val_boxes if boxes is not None else _val_masks
        report = check(analyzer, samples, truth_files, predictions)
        report = {"csv": str(labels_csv), "where": where or [], **report}
        (_print_boxes if boxes is not None else _print_masks)(report)
        if json_out:
            atomic_write(json_out, json.dumps(report, indent=2) + "\n")
        return
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


def _val_boxes(analyzer, samples, boxes_dir: Path, predictions: Path | None) -> dict:
    """The detector's boxes on ``samples`` through the product, against ``boxes_dir``'s human boxes."""
    from collections import Counter

    from rich.progress import Progress

    from ..runtime import SkinInferError
    from ..runtime.detections import box_report, read_classes
    from ..runtime.evaluation import box_truth, found_boxes
    from ..runtime.files import atomic_write

    if not boxes_dir.is_dir():
        raise fail(f"--boxes {boxes_dir}: no such folder; give the folder of YOLO box files (<image stem>.txt).")
    if not analyzer.detectors:
        raise fail("no detector among the models; give a detector bundle with --model (or the default models).")
    detector = analyzer.detectors[0]
    classes = list(detector.classes)
    listed = boxes_dir.parent / "classes.txt"
    if listed.is_file() and read_classes(boxes_dir.parent) != classes:
        raise fail(f"{listed} lists {read_classes(boxes_dir.parent)}, but {detector.name} detects {classes}.")
    found, counts, truths, not_run, records = [], [], [], Counter(), []
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(f"val {detector.name}", total=len(samples))
        for sample, result in zip(samples, analyzer.stream([s.file for s in samples]), strict=True):
            try:
                truths.append(box_truth(sample.file, boxes_dir, result, classes))
            except SkinInferError as exc:
                raise fail(str(exc)) from None
            boxes, counted = found_boxes(result, classes)
            found.append(boxes)
            counts.append(counted)
            if not result.ok:
                not_run["error"] += 1
            elif detector.name in result.not_run:
                why = result.not_run[detector.name]
                not_run[
                    "face too small" if "too small" in why else "no face" if "no face" in why else "routed away"
                ] += 1
            if predictions:
                records.append(json.dumps(result.to_dict(), ensure_ascii=False))
            progress.advance(task)
    if predictions:
        atomic_write(predictions, "\n".join(records) + "\n")
    return {"model": detector.name, "threshold": detector.threshold, "report_threshold": detector.report_threshold,
            "not_run": dict(not_run), **box_report(found, truths, classes, counts)}  # fmt: skip


def _val_masks(analyzer, samples, masks_dir: Path, predictions: Path | None) -> dict:
    """The face parser's labels over each whole image through the product (0 where no face was parsed), against
    ``masks_dir``'s label maps (the parser's label ids, its manifest's ``id2label``)."""
    import numpy as np
    from rich.progress import Progress

    from ..runtime import SkinInferError
    from ..runtime.evaluation import mask_truth
    from ..runtime.files import atomic_write
    from ..runtime.segmentation import confusion, parse_metrics

    if not masks_dir.is_dir():
        raise fail(f"--masks {masks_dir}: no such folder; give the folder of label maps (<image stem>.png).")
    id2label = getattr(analyzer.finder, "id2label", None)
    if not id2label:
        raise fail(f"--parser {analyzer.finder.name} parses nothing; score a face parser (--parser auto or segformer).")
    labels = [id2label.get(i, f"label_{i}") for i in range(max(id2label) + 1)]
    matrix = np.zeros((len(labels), len(labels)), np.int64)
    no_face, records = 0, []
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("val face parser", total=len(samples))
        for sample, result in zip(samples, analyzer.stream([s.file for s in samples]), strict=True):
            try:
                truth = mask_truth(sample.file, masks_dir, result, len(labels))
            except SkinInferError as exc:
                raise fail(str(exc)) from None
            predicted = result.label_map() if result.ok else np.zeros_like(truth)
            no_face += not result.faces
            matrix += confusion(predicted, truth, len(labels))
            if predictions:
                records.append(json.dumps(result.to_dict(), ensure_ascii=False))
            progress.advance(task)
    if predictions:
        atomic_write(predictions, "\n".join(records) + "\n")
    return {"model": analyzer.finder.name, "images": len(samples), "no_face": no_face,
            **parse_metrics(matrix, labels)}  # fmt: skip


def _print_masks(report: dict) -> None:
    out = Console()
    table = Table(title=f"skin val: {report['model']} label maps ({report['images']} images)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("mean F1 over the face parts", str(report["mean_f1"]))
    table.add_row("pixel accuracy", str(report["pixel_accuracy"]))
    table.add_row("images with no face found", str(report["no_face"]))
    for part, f1 in report["part_f1"].items():
        table.add_row(f"F1 {part}", str(f1))
    out.print(table)


def _print_boxes(report: dict) -> None:
    out = Console()
    table = Table(title=f"skin val: {report['model']} boxes ({report['images']} images)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row(f"mAP50 (types with >= 10 boxes: {len(report['map50_types'])})", str(report["map50"]))
    table.add_row("count Spearman rho", str(report["count_spearman"]))
    table.add_row("score threshold", str(report["threshold"]))
    for reason, count in report["not_run"].items():
        table.add_row(f"not run: {reason}", str(count))
    out.print(table)
    types = Table(title="per type (IoU 0.5)")
    for column in ("type", "AP50", "true boxes", "found"):
        types.add_column(column, justify="left" if column == "type" else "right")
    for name, ap in report["ap50"].items():
        types.add_row(name, "-" if ap is None else str(ap), str(report["true_boxes"][name]),
                      str(report["found_boxes"][name]))  # fmt: skip
    out.print(types)


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
