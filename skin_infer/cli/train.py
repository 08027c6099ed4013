"""``skin train`` (classifiers), ``skin train-parser`` (face parsers) and ``skin train-detector`` (box detectors):
write run directories."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import app, err, fail, fail_on, need_extra

TRACK_HELP = (
    "Experiment tracking: none, mlflow (a local store, ./mlruns or --track-uri) or wandb (offline without network)."
)
Track = Annotated[str, typer.Option(help=TRACK_HELP)]
TrackUri = Annotated[
    str | None, typer.Option(help="MLflow store: a folder (default ./mlruns: SQLite and artefacts) or a server URI.")
]


def _fit(trainer, cfg, resume, track: str, track_uri: str | None) -> dict:
    """The trainer's fit, tracked as ``--track`` says (``train/tracking.py``); ``--resume`` continues the same
    tracked run."""
    from dataclasses import asdict

    from ..train.tracking import make_tracker, tracked_fit

    try:
        tracker = make_tracker(track, track_uri)
    except ImportError as exc:
        raise need_extra("track", f"--track {track}", exc) from None
    return tracked_fit(trainer, tracker, asdict(cfg), bool(resume))


def _run_options(config_class, given: dict, config: Path | None, out: Path | None, resume: Path | None):
    """(config, run directory): the run's own config.json on --resume, else --config overlaid with the options
    given on the command line; refuses to start a second run in a run directory."""
    if resume:
        return config_class.load(resume / "config.json"), resume
    cfg = config_class.load(config) if config else config_class()
    cfg = config_class.from_dict({**cfg.__dict__, **{k: v for k, v in given.items() if v is not None}})
    if not cfg.data:
        raise fail("--data is required (or a --config that sets it)")
    if out is None:
        raise fail("--out RUN_DIR is required: where the run directory goes")
    if (out / "state.pt").exists():
        raise fail(f"{out} already holds a run; use --resume {out} or another --out")
    return cfg, out


@app.command("train")
def train(
    data: Annotated[
        Path | None, typer.Option(help="Dataset root: class folders, or the base of --csv's paths.")
    ] = None,
    csv: Annotated[str | None, typer.Option(help="CSV with a path column and one label column per head.")] = None,
    label: Annotated[str | None, typer.Option(help="Label column(s), comma-separated: one head each.")] = None,
    ordinal: Annotated[
        str | None, typer.Option(help="Heads (comma-separated) whose labels are ordered grades.")
    ] = None,
    group_column: Annotated[str | None, typer.Option(help="Column grouping images that must share a split.")] = None,
    skip_unlabelled: Annotated[
        bool | None, typer.Option(help="Leave out rows with an empty or NaN-like label (else they are refused).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="timm model name (default efficientnet_b0).")] = None,
    img_size: Annotated[int | None, typer.Option(help="Input size in pixels.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (AdamW).")] = None,
    loss: Annotated[
        str | None,
        typer.Option(
            help="ce, ls, focal, cb_ce, cb_focal, masked_ls, ldl, cb_ldl, soft_f1, or a weighted sum like "
            "cb_focal:0.8+soft_f1:0.2."
        ),
    ] = None,
    sampler: Annotated[str | None, typer.Option(help="none or balanced.")] = None,
    augment: Annotated[str | None, typer.Option(help="none, light, medium, strong or photo.")] = None,
    constancy: Annotated[
        str | None,
        typer.Option(help="Colour constancy of the input, in training and deployed: none or shades_of_gray."),
    ] = None,
    schedule: Annotated[str | None, typer.Option(help="cosine or restarts.")] = None,
    pretrained: Annotated[
        bool | None, typer.Option("--pretrained", help="timm's published weights (needs the Hugging Face Hub).")
    ] = None,
    init_weights: Annotated[str | None, typer.Option(help="Local safetensors state dict to start from.")] = None,
    mean: Annotated[
        str | None, typer.Option(help="Input mean, 3 comma-separated values (default: the model's).")
    ] = None,
    std: Annotated[str | None, typer.Option(help="Input std, 3 comma-separated values.")] = None,
    limit: Annotated[int | None, typer.Option(help="Train on the first N training images (sanity runs).")] = None,
    output_stride: Annotated[int | None, typer.Option(help="16: ResNet with its last stage at stride 1.")] = None,
    patience: Annotated[
        int | None, typer.Option(help="Early stopping after N epochs without a better val score (0: off).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    threads: Annotated[int | None, typer.Option(help="torch intra-op threads (0: default).")] = None,
    config: Annotated[
        Path | None, typer.Option(help="YAML or JSON file of options (a run's config.json re-runs it).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory to write.")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue the run in this directory exactly.")] = None,
    track: Track = "none",
    track_uri: TrackUri = None,
) -> None:
    """Train a classifier (timm) on an image folder or a CSV; writes a run directory `skin export` reads."""
    try:
        from ..train.config import TrainConfig
        from ..train.engine import Trainer, TrainError
        from ..train.model import WeightsError
    except ImportError as exc:
        raise need_extra("train", "training", exc) from None
    try:
        given = {
            "data": str(data) if data else None,
            "csv": csv,
            "model": model,
            "img_size": img_size,
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "loss": loss,
            "sampler": sampler,
            "augment": augment,
            "constancy": constancy,
            "schedule": schedule,
            "pretrained": pretrained,
            "init_weights": init_weights,
            "limit": limit,
            "output_stride": output_stride,
            "patience": patience,
            "seed": seed,
            "threads": threads,
            "group_column": group_column,
            "skip_unlabelled": skip_unlabelled,
            "labels": label.split(",") if label else None,
            "ordinal": ordinal.split(",") if ordinal else None,
            "mean": [float(v) for v in mean.split(",")] if mean else None,
            "std": [float(v) for v in std.split(",")] if std else None,
        }
        cfg, run_dir = _run_options(TrainConfig, given, config, out, resume)
        result = _fit(Trainer(cfg, run_dir, resume=bool(resume)), cfg, resume, track, track_uri)
    except (TrainError, WeightsError, ValueError, FileNotFoundError) as exc:
        raise fail_on(exc) from None
    summary = (
        f"selected epoch {result['best_epoch']}: val balanced accuracy {result['balanced_accuracy']:.4f}, "
        f"macro-F1 {result['macro_f1']:.4f}"
    )
    if "test" in result:
        summary += (
            f"; test balanced accuracy {result['test']['balanced_accuracy']:.4f}, "
            f"macro-F1 {result['test']['macro_f1']:.4f}"
        )
    err.print(
        f"{summary}\nrun directory: {run_dir} (export it with `skin export classifier {run_dir}`)", highlight=False
    )


@app.command("train-parser")
def train_parser(
    data: Annotated[Path | None, typer.Option(help="Root with train/ (and test/) images+masks.")] = None,
    arch: Annotated[str | None, typer.Option(help="mnv2-mlp, segformer-b0 or segformer-b1.")] = None,
    init_weights: Annotated[str | None, typer.Option(help="mnv2-mlp: ImageNet MobileNetV2 safetensors.")] = None,
    size: Annotated[int | None, typer.Option(help="Input size in pixels (a multiple of 32).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (AdamW).")] = None,
    limit: Annotated[int | None, typer.Option(help="Train on the first N training pairs (sanity runs).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    threads: Annotated[int | None, typer.Option(help="torch intra-op threads (0: default).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML or JSON options (a run's config.json re-runs it).")] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory to write.")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue the run in this directory exactly.")] = None,
    track: Track = "none",
    track_uri: TrackUri = None,
) -> None:
    """Train a face parser (SegFormer or MobileNetV2 + SegFormer decoder) on face photos with label maps."""
    try:
        from ..train.engine import TrainError
        from ..train.parsing import ParseConfig, ParserTrainer
    except ImportError as exc:
        raise need_extra("train", "training", exc) from None
    try:
        given = {
            "data": str(data) if data else None,
            "arch": arch,
            "init_weights": init_weights,
            "size": size,
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "limit": limit,
            "seed": seed,
            "threads": threads,
        }
        cfg, run_dir = _run_options(ParseConfig, given, config, out, resume)
        result = _fit(ParserTrainer(cfg, run_dir, resume=bool(resume)), cfg, resume, track, track_uri)
    except (TrainError, ValueError, FileNotFoundError) as exc:
        raise fail_on(exc) from None
    test = result.get("test", result["val"])
    err.print(
        f"selected epoch {result['best_epoch']}: {'test' if 'test' in result else 'val'} mean F1 "
        f"{test['mean_f1']:.4f}, skin F1 {test['part_f1']['skin']:.4f}, pixel accuracy {test['pixel_accuracy']:.4f}"
        f"\nrun directory: {run_dir} (export it with `skin export parser --run {run_dir}`)",
        highlight=False,
    )


@app.command("train-detector")
def train_detector(
    data: Annotated[
        Path | None, typer.Option(help="YOLO-format root: labels.csv (file, split), labels/*.txt, classes.txt.")
    ] = None,
    init_weights: Annotated[str | None, typer.Option(help="ImageNet MobileNetV2 safetensors (import_weights).")] = None,
    size: Annotated[int | None, typer.Option(help="Input size in pixels (a multiple of 32).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (AdamW).")] = None,
    decoder_dim: Annotated[int | None, typer.Option(help="Channels of the fused stride-4 features.")] = None,
    repeat_threshold: Annotated[
        float | None, typer.Option(help="Repeat-factor sampling's t: types in fewer images than this share repeat.")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Train on the first N training images (sanity runs).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    threads: Annotated[int | None, typer.Option(help="torch intra-op threads (0: default).")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML or JSON options (a run's config.json re-runs it).")] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory to write.")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue the run in this directory exactly.")] = None,
    track: Track = "none",
    track_uri: TrackUri = None,
) -> None:
    """Train a box detector (CenterNet-style on MobileNetV2) on YOLO-format data; selects the epoch by val mAP50."""
    try:
        from ..train.detection import DetectConfig, DetectorTrainer
        from ..train.engine import TrainError
    except ImportError as exc:
        raise need_extra("train", "training", exc) from None
    try:
        given = {
            "data": str(data) if data else None,
            "init_weights": init_weights,
            "size": size,
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "decoder_dim": decoder_dim,
            "repeat_threshold": repeat_threshold,
            "limit": limit,
            "seed": seed,
            "threads": threads,
        }
        cfg, run_dir = _run_options(DetectConfig, given, config, out, resume)
        result = _fit(DetectorTrainer(cfg, run_dir, resume=bool(resume)), cfg, resume, track, track_uri)
    except (TrainError, ValueError, FileNotFoundError) as exc:
        raise fail_on(exc) from None
    val = result["val"]
    err.print(
        f"selected epoch {result['best_epoch']}: val mAP50 {val['map50']} over {', '.join(val['map50_types'])}; "
        f"count Spearman {val['count_spearman']}\nrun directory: {run_dir} (export it with `skin export detector "
        f"{run_dir} --out BUNDLE`)",
        highlight=False,
    )
