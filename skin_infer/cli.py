"""The ``skin`` commands and the ``skin-infer`` shortcut. Heavy imports happen inside the command that needs them."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

app = typer.Typer(
    help="skin-infer: skin analysis from photos with ONNX Runtime.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="Model files: list them, download them into the cache.", no_args_is_help=True)
app.add_typer(models_app, name="models")
err = Console(stderr=True, soft_wrap=True, markup=False)  # never cut mid-sentence; paths may hold [brackets]


class Parser(str, Enum):
    auto = "auto"
    segformer = "segformer"
    yunet = "yunet"
    haar = "haar"
    none = "none"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    tensorrt = "tensorrt"
    coreml = "coreml"
    dml = "dml"


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(Text.assemble(("error: ", "bold red"), message), highlight=False)
    return typer.Exit(code)


def _demo_photo(folder: Path) -> str:
    try:
        from skimage import data
    except ImportError:
        raise _fail("--demo needs scikit-image for its sample photo: pip install 'skin-infer[demo]'") from None
    import cv2

    path = folder / "astronaut.png"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return str(path)


def _overlay_name(file: str, flat: bool) -> str:
    """The overlay's file name: the photo's name, or its whole path flattened when folders may repeat names."""
    name = Path(file).name if flat else file.replace("/", "__").replace("\\", "__").lstrip("._")
    return name + ".overlay.jpg"


def _print_table(result: dict, heads: list[str]) -> None:
    out = Console(width=None if sys.stdout.isatty() else 160)  # piped into a file or a log: do not cut cells
    faces = result["faces"]
    out.print(
        f"[bold]{escape(result['file'])}[/]  {result['width']}x{result['height']}  "
        f"{len(faces)} face(s)" + ("" if faces else " — analysed as a whole image"),
        highlight=False,
    )
    table = Table(show_header=True, header_style="bold")
    for col in ["face", "region", "box x,y,w,h", "skin", "ITA°", "tone", "a*"] + heads:
        table.add_column(col)
    for region in result["regions"]:
        m = region.get("measures") or {}
        preds = [
            f"{p['label']} {p['score']:.2f}"
            if (p := region["predictions"].get(h))
            else (region.get("note", "-") if i == 0 else "-")
            for i, h in enumerate(heads)
        ]
        table.add_row(
            "-" if region["face_index"] is None else str(region["face_index"]),
            region["name"],
            ",".join(map(str, region["box"])),
            f"{region['skin_fraction']:.0%}",
            str(m.get("ita_deg", "-")),
            m.get("skin_tone", "-"),
            str(m.get("redness_a", "-")),
            *preds,
        )
    out.print(table)


def infer(
    paths: Annotated[list[str] | None, typer.Argument(help="Photos and/or folders to analyse.")] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Classifier bundle folder; default: the shipped model (or $SKIN_INFER_MODEL); 'none' for "
            "colour measures only."
        ),
    ] = None,
    parser: Annotated[Parser, typer.Option(help="Face finder: auto picks segformer > yunet > haar.")] = Parser.auto,
    parser_model: Annotated[Path | None, typer.Option(help="Face-parser bundle folder or YuNet .onnx file.")] = None,
    device: Annotated[Device, typer.Option(help="Execution provider; an unavailable one is an error.")] = Device.auto,
    threads: Annotated[int, typer.Option(min=0, help="Intra-op threads per model (0: ONNX Runtime's default).")] = 0,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write results to .csv, .json or .jsonl.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print results as JSON on stdout.")] = False,
    save_overlays: Annotated[Path | None, typer.Option(help="Folder for overlay pictures.")] = None,
    explain: Annotated[bool, typer.Option(help="Add class-activation heatmaps to overlays.")] = False,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Descend into sub-folders.")] = False,
    resume: Annotated[bool, typer.Option(help="Skip images already in --out and keep their results.")] = False,
    max_pixels: Annotated[int, typer.Option(min=1, help="Refuse larger images (decompression bombs).")] = 64_000_000,
    min_skin: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Skin fraction below which a region is not classified.")
    ] = 0.25,
    top_k: Annotated[int, typer.Option(min=1, help="Top-k labels kept per head.")] = 3,
    demo: Annotated[bool, typer.Option(help="Analyse a sample portrait (needs the [demo] extra).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No table and no progress bar.")] = False,
) -> None:
    """Analyse photos: faces, skin regions, colour measures and (with a classifier) predictions."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .runtime import Analyzer, Classifier, ResultWriter, SkinInferError, make_finder
    from .runtime.batch import analyze_files
    from .runtime.files import collect_inputs
    from .runtime.images import IMAGE_SUFFIXES
    from .runtime.models import default_classifier
    from .runtime.overlays import save_overlay

    paths = list(paths or [])
    if resume and out is None:
        raise _fail("--resume needs --out: it skips the images already in that file.")
    model = None if model and model.lower() == "none" else Path(model) if model else default_classifier()
    if explain and model is None:
        raise _fail("--explain needs a classifier (--model) whose bundle has a CAM output.")
    demo_dir = tempfile.TemporaryDirectory(prefix="skin-infer-demo-") if demo else None
    if demo_dir:
        paths.append(_demo_photo(Path(demo_dir.name)))
    if not paths:
        raise _fail("give at least one photo or folder (or --demo). Example: skin-infer photo.jpg")
    files, warnings = collect_inputs(paths, recursive)
    for warning in warnings:
        err.print(Text.assemble(("warning: ", "yellow"), warning), highlight=False)
    if not files:
        raise _fail(
            f"no images found in {', '.join(paths)} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}"
            f"{'' if recursive else '; add --recursive for sub-folders'}).",
            1,
        )
    try:
        finder = make_finder(parser.value, parser_model, device.value, threads)
        classifier = Classifier(model, device.value, threads, top_k) if model else None
        if explain and not classifier.has_cam:
            raise SkinInferError(
                f"{model}: this bundle has no CAM output, so --explain cannot draw heatmaps; "
                "re-export it with the CAM output."
            )
        heads = [(h.name, h.labels) for h in classifier.heads] if classifier else []
        if save_overlays:
            save_overlays.mkdir(parents=True, exist_ok=True)
        writer = ResultWriter(out, heads, resume) if out else None  # last: nothing after it can fail
    except (SkinInferError, OSError) as exc:
        raise _fail(str(exc)) from None
    done = writer.done if writer else set()
    todo = [f for f in files if f not in done]
    if done:
        err.print(f"resuming: {len(files) - len(todo)} image(s) already in {out} are skipped")
    analyzer = Analyzer(finder, classifier, min_skin, explain)
    providers = f"faces: {finder.name} ({finder.provider})" + (
        f", classifier: {classifier.bundle.name} ({classifier.provider})" if classifier else ", no classifier"
    )
    if not quiet:
        err.print(providers, highlight=False)

    results, count, failed, n_faces, interrupted = [], 0, 0, 0, False  # results kept only to print them
    show_progress = len(todo) > 1 and not quiet and not json_out
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not show_progress,
    )
    start = time.perf_counter()
    try:
        with progress:
            task = progress.add_task("analysing", total=len(todo))
            for analysis in analyze_files(todo, analyzer, max_pixels):
                result = analysis.result
                if result["status"] != "ok":
                    failed += 1
                    if not quiet:
                        progress.console.print(Text.assemble(("failed: ", "red"), result["error"]), highlight=False)
                elif save_overlays:
                    save_overlay(
                        analysis, save_overlays, _overlay_name(result["file"], flat=len(paths) == 1 and not recursive)
                    )
                if writer:
                    writer.write(result)
                if json_out or count == 0:
                    results.append(result)
                count, n_faces = count + 1, n_faces + len(result["faces"])
                progress.advance(task)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if writer:
            writer.close()
        if demo_dir:
            demo_dir.cleanup()
    elapsed = time.perf_counter() - start
    if json_out:
        typer.echo(json.dumps(results[0] if len(results) == 1 else results, indent=2, ensure_ascii=False))
    elif count == 1 and results[0]["status"] == "ok" and not quiet:
        _print_table(results[0], [h for h, _ in heads])
    summary = (
        f"{'interrupted: ' if interrupted else ''}{count - failed} image(s) analysed, {failed} failed, "
        f"{n_faces} face(s), {elapsed:.2f} s ({count / elapsed if elapsed > 0 else 0:.1f} img/s)"
    )
    if writer:
        summary += f"; results in {out}"
    if save_overlays:
        summary += f"; overlays in {save_overlays}"
    err.print(summary, highlight=False)
    if interrupted:
        raise typer.Exit(130)
    raise typer.Exit(1 if failed else 0)


app.command("infer")(infer)
infer_main = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
infer_main.command()(infer)


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
    model: Annotated[str | None, typer.Option(help="timm model name (default efficientnet_b0).")] = None,
    img_size: Annotated[int | None, typer.Option(help="Input size in pixels.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (AdamW).")] = None,
    loss: Annotated[
        str | None,
        typer.Option(
            help="ce, ls, focal, cb_ce, cb_focal, masked_ls, soft_f1, or a weighted sum like cb_focal:0.8+soft_f1:0.2."
        ),
    ] = None,
    sampler: Annotated[str | None, typer.Option(help="none or balanced.")] = None,
    augment: Annotated[str | None, typer.Option(help="none, light, medium, strong or photo.")] = None,
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
) -> None:
    """Train a classifier (timm) on an image folder or a CSV; writes a run directory `skin export` reads."""
    try:
        from .train.config import TrainConfig
        from .train.engine import Trainer, TrainError
        from .train.model import WeightsError
    except ImportError as exc:
        raise _fail(
            f"training needs the [train] extra ({exc.name} is missing): pip install 'skin-infer[train]'"
        ) from None
    try:
        if resume:
            cfg, run_dir = TrainConfig.load(resume / "config.json"), resume
        else:
            cfg = TrainConfig.load(config) if config else TrainConfig()
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
                "schedule": schedule,
                "pretrained": pretrained,
                "init_weights": init_weights,
                "limit": limit,
                "output_stride": output_stride,
                "patience": patience,
                "seed": seed,
                "threads": threads,
                "group_column": group_column,
                "labels": label.split(",") if label else None,
                "ordinal": ordinal.split(",") if ordinal else None,
                "mean": [float(v) for v in mean.split(",")] if mean else None,
                "std": [float(v) for v in std.split(",")] if std else None,
            }
            cfg = TrainConfig.from_dict({**cfg.__dict__, **{k: v for k, v in given.items() if v is not None}})
            if not cfg.data:
                raise _fail("--data is required (or a --config that sets it)")
            if out is None:
                raise _fail("--out RUN_DIR is required: where the run directory goes")
            run_dir = out
            if (run_dir / "state.pt").exists():
                raise _fail(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
        trainer = Trainer(cfg, run_dir, resume=bool(resume))
        result = trainer.fit()
    except (TrainError, WeightsError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc), 1) from None
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
    data: Annotated[Path | None, typer.Option(help="CelebAMask-HQ-style root with train/ (and test/) images+masks.")] = None,
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
) -> None:
    """Train a face parser (SegFormer or MobileNetV2 + SegFormer decoder) on face photos with label maps."""
    try:
        from .train.engine import TrainError
        from .train.parsing import ParseConfig, ParserTrainer
    except ImportError as exc:
        raise _fail(
            f"training needs the [train] extra ({exc.name} is missing): pip install 'skin-infer[train]'"
        ) from None
    try:
        if resume:
            cfg, run_dir = ParseConfig.load(resume / "config.json"), resume
        else:
            cfg = ParseConfig.load(config) if config else ParseConfig()
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
            cfg = ParseConfig.from_dict({**cfg.__dict__, **{k: v for k, v in given.items() if v is not None}})
            if not cfg.data:
                raise _fail("--data is required (or a --config that sets it)")
            if out is None:
                raise _fail("--out RUN_DIR is required: where the run directory goes")
            run_dir = out
            if (run_dir / "state.pt").exists():
                raise _fail(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
        result = ParserTrainer(cfg, run_dir, resume=bool(resume)).fit()
    except (TrainError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc), 1) from None
    test = result.get("test", result["val"])
    err.print(
        f"selected epoch {result['best_epoch']}: {'test' if 'test' in result else 'val'} mean F1 "
        f"{test['mean_f1']:.4f}, skin F1 {test['part_f1']['skin']:.4f}, pixel accuracy {test['pixel_accuracy']:.4f}"
        f"\nrun directory: {run_dir} (export it with `skin export parser --run {run_dir}`)",
        highlight=False,
    )


export_app = typer.Typer(help="Trained models to verified, optimised ONNX bundles.", no_args_is_help=True)
app.add_typer(export_app, name="export")


def _export_imports():
    try:
        from .export.bundle_writer import ExportError
    except ImportError as exc:
        raise _fail(
            f"export needs the [export] extra ({exc.name} is missing): pip install 'skin-infer[export]'"
        ) from None
    return ExportError


@export_app.command("classifier")
def export_classifier_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run directory written by `skin train`.")],
    out: Annotated[Path, typer.Option(help="Bundle folder to write.")],
    precision: Annotated[
        str, typer.Option(help="fp32, int8 (gated on accuracy), fp16 (GPU) or auto (the fastest that passes).")
    ] = "fp32",
    calib: Annotated[
        str | None, typer.Option(help="Calibration images (folder or CSV); default: the run's val split.")
    ] = None,
    eval_source: Annotated[
        str | None, typer.Option("--eval", help="Labelled images for the int8 gate (folder tree or CSV); default: val.")
    ] = None,
    max_drop: Annotated[
        float, typer.Option(help="Largest balanced-accuracy drop int8 may cost (0.01 = 1 point).")
    ] = 0.01,
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 17,
    cam: Annotated[
        bool | None,
        typer.Option("--cam/--no-cam", help="Require / leave out the in-graph CAM (default: added when exact)."),
    ] = None,
    target: Annotated[str, typer.Option(help="cpu or gpu: what the bundle will run on.")] = "cpu",
) -> None:
    """Export a trained classifier to a bundle, verified against torch."""
    ExportError = _export_imports()
    from .export.classifier import export_classifier

    start = time.perf_counter()
    try:
        manifest = export_classifier(run_dir, out, precision, calib, eval_source, opset, cam, target, max_drop)
    except (ExportError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc), 1) from None
    opt = manifest["optimization"]
    check = manifest["verification"]["fp32"]
    err.print(
        f"{out}: {manifest['architecture']} {manifest['precision']}, "
        f"CAM {'yes' if 'cam' in manifest['outputs'] else 'no'}; "
        f"nodes {opt['before']['nodes']} -> {opt['after']['nodes']}, {opt['before']['bytes'] / 1e6:.2f} -> "
        f"{(out / 'model.onnx').stat().st_size / 1e6:.2f} MB; parity on {check['images']} images: top-1 "
        f"{check['top1_agreement']:.4f}, max |logit diff| {check['max_abs_logit_diff']:.2e}"
        + (f"; {manifest['quantization']['decision']}" if "quantization" in manifest else "")
        + f" ({time.perf_counter() - start:.1f} s)",
        highlight=False,
    )


@export_app.command("parser")
def export_parser_cmd(
    out: Annotated[Path, typer.Option(help="Bundle folder to write.")],
    hf: Annotated[str | None, typer.Option(help="Hugging Face model id of a SegFormer face parser.")] = None,
    revision: Annotated[str | None, typer.Option(help="Revision (branch, tag or commit) of --hf.")] = None,
    local: Annotated[Path | None, typer.Option(help="Folder with a model saved by save_pretrained().")] = None,
    size: Annotated[int, typer.Option(help="Input size (square).")] = 512,
    precision: Annotated[str, typer.Option(help="fp32 or int8 (dynamic, attention and MLP weights).")] = "fp32",
    labels_output: Annotated[bool, typer.Option(help="Output the argmax label map (uint8) instead of logits.")] = False,
    skin_labels: Annotated[str | None, typer.Option(help="Labels counted as skin (default: skin,nose).")] = None,
    images: Annotated[Path | None, typer.Option(help="Photos to verify parity on.")] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 17,
) -> None:
    """Export a SegFormer face parser to a bundle, verified against torch."""
    ExportError = _export_imports()
    from .export.parser import export_parser

    start = time.perf_counter()
    try:
        manifest = export_parser(
            out,
            hf,
            local,
            revision,
            size,
            precision,
            labels_output,
            skin_labels.split(",") if skin_labels else None,
            images,
            opset,
        )
    except (ExportError, ValueError, OSError) as exc:
        raise _fail(str(exc), 1) from None
    check = manifest["verification"][precision]
    err.print(
        f"{out}: SegFormer {precision} at {size}px, {len(manifest['id2label'])} labels, skin = "
        f"{','.join(manifest['skin_labels'])}; pixel agreement with torch {check['pixel_agreement']:.4f} on "
        f"{check['images']} photos ({time.perf_counter() - start:.1f} s)",
        highlight=False,
    )


@export_app.command("verify")
def export_verify_cmd(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    images: Annotated[Path | None, typer.Option(help="Photos for a face parser's parity check.")] = None,
) -> None:
    """Re-check a bundle: checksums, graph against manifest, and parity with its source when torch is here."""
    from .export.verify import verify_bundle
    from .runtime import SkinInferError

    try:
        report = verify_bundle(bundle, images)
    except (SkinInferError, RuntimeError) as exc:
        raise _fail(str(exc), 1) from None
    typer.echo(json.dumps(report, indent=2))


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

    from .bench import report, suite
    from .runtime.models import default_classifier

    shared = shared or Path(os.environ.get("SKIN_INFER_SHARED", "../shared"))
    plan = suite.Plan.quick(threads) if quick else suite.Plan(threads=threads)
    start = time.perf_counter()
    rows, notes = suite.run(
        plan,
        shared if shared.is_dir() else None,
        default_classifier(),
        log=lambda m: err.print(m, style="dim", highlight=False),
    )
    Console(width=max(shutil.get_terminal_size().columns, 180)).print(report.table(rows))
    for line in [report.headline(rows), *notes]:
        err.print(line, highlight=False)
    if json_path:
        report.write_json(rows, json_path)
    if markdown_path:
        from .runtime.files import atomic_write

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
            err.print(Text.assemble(("below floor: ", "red"), failure), highlight=False)
        if failures:
            raise typer.Exit(1)


@models_app.command("list")
def models_list() -> None:
    """Models the runtime can download, and which are in the cache."""
    from .runtime.models import REGISTRY, cache_dir, cached_path

    table = Table("name", "cached", "size", "licence", "description", title=f"cache: {cache_dir()}")
    for name, source in REGISTRY.items():
        path = cached_path(name)
        table.add_row(
            name,
            str(path) if path else "no",
            f"{source.size / 1e6:.2f} MB",
            source.licence,
            source.description,
        )
    Console().print(table)


@models_app.command("pull")
def models_pull(
    name: Annotated[str, typer.Argument(help="Model name (see `skin models list`).")],
    url: Annotated[str | None, typer.Option(help="Download from this URL instead (a mirror).")] = None,
) -> None:
    """Download a model into the cache, checking its pinned sha256."""
    from .runtime import SkinInferError, pull

    try:
        path = pull(name, url)
    except SkinInferError as exc:
        raise _fail(str(exc), 1) from None
    err.print(f"{name}: saved to {path} (sha256 verified); `--parser auto` uses it from now on", highlight=False)
