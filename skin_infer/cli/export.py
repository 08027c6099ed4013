"""``skin export classifier|parser|detector|ensemble|verify``: trained models to verified, optimised ONNX bundles."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from .common import app, err, fail, fail_on, need_extra

export_app = typer.Typer(help="Trained models to verified, optimised ONNX bundles.", no_args_is_help=True)
app.add_typer(export_app, name="export")


def _export_imports():
    """ExportError, after checking the [export] extra is installed (torch, onnx, onnxslim...)."""
    try:
        import onnx  # noqa: F401
        import onnxslim  # noqa: F401
        import torch  # noqa: F401

        from ..export.bundle_writer import ExportError
    except ImportError as exc:
        raise need_extra("export", "exporting a model", exc) from None
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
    domain: Annotated[
        str | None, typer.Option(help="Where the model applies: face (photos) or dermoscopy (close-ups), or any.")
    ] = None,
    applies_to: Annotated[
        str | None, typer.Option("--input", help="What it looks at: face (the face crop), region or image.")
    ] = None,
) -> None:
    """Export a trained classifier to a bundle, verified against torch."""
    ExportError = _export_imports()
    from ..export.classifier import export_classifier

    start = time.perf_counter()
    try:
        manifest = export_classifier(
            run_dir,
            out,
            precision=precision,
            calib=calib,
            eval_source=eval_source,
            opset=opset,
            cam=cam,
            target=target,
            max_drop=max_drop,
            domain=domain,
            applies_to=applies_to,
        )
    except (ExportError, ValueError, FileNotFoundError) as exc:
        raise fail_on(exc) from None
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
    run: Annotated[Path | None, typer.Option(help="Run directory written by `skin train-parser`.")] = None,
    size: Annotated[int | None, typer.Option(help="Input size (square); default: the run's, else 512.")] = None,
    precision: Annotated[
        str,
        typer.Option(
            help="fp32, int8 or auto. Runs: static int8 behind a pixel-agreement and F1 gate (auto: int8 when it "
            "passes and is faster). Hub SegFormers: dynamic int8 of attention and MLP weights."
        ),
    ] = "fp32",
    labels_output: Annotated[bool, typer.Option(help="Output the argmax label map (uint8) instead of logits.")] = False,
    skin_labels: Annotated[str | None, typer.Option(help="Labels counted as skin (default: skin,nose).")] = None,
    images: Annotated[
        Path | None, typer.Option(help="Photos to verify parity on (default: scikit-image's sample photos).")
    ] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 17,
) -> None:
    """Export a face parser (hub or local SegFormer, or a train-parser run) to a bundle, verified against torch."""
    ExportError = _export_imports()
    from ..export.parser import export_parser

    start = time.perf_counter()
    try:
        manifest = export_parser(
            out,
            hf=hf,
            local=local,
            run=run,
            revision=revision,
            size=size,
            precision=precision,
            labels_output=labels_output,
            skin_labels=skin_labels.split(",") if skin_labels else None,
            images=images,
            opset=opset,
        )
    except (ExportError, ValueError, OSError) as exc:
        raise fail_on(exc) from None
    check = manifest["verification"][manifest["precision"]]
    err.print(
        f"{out}: {manifest['architecture']} {manifest['precision']} at {manifest['input']['size'][0]}px, "
        f"{len(manifest['id2label'])} labels, skin = {','.join(manifest['skin_labels'])}; pixel agreement with "
        f"torch {check['pixel_agreement']:.4f} on {manifest['verification']['photos']} "
        f"({time.perf_counter() - start:.1f} s)",
        highlight=False,
    )


@export_app.command("detector")
def export_detector_cmd(
    run: Annotated[Path, typer.Argument(help="Run directory written by `skin train-detector`.")],
    out: Annotated[Path, typer.Option(help="Bundle folder to write.")],
    precision: Annotated[
        str, typer.Option(help="fp32, int8 or auto (int8 when it keeps val mAP50 within 1 point and is faster).")
    ] = "auto",
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 17,
) -> None:
    """Export a box detector (wrinkles) to a bundle: parity, int8 gate, threshold and framing measured on val."""
    ExportError = _export_imports()
    from ..export.detector import export_detector

    start = time.perf_counter()
    try:
        manifest = export_detector(run, out, precision=precision, opset=opset)
    except (ExportError, ValueError, OSError) as exc:
        raise fail_on(exc) from None
    v = manifest["verification"]
    err.print(
        f"{out}: {manifest['architecture']} {manifest['precision']} at {manifest['input']['size'][0]}px, "
        f"{len(manifest['classes'])} types; val mAP50 torch {v['torch_val_map50']} / ONNX Runtime "
        f"{v[manifest['precision']]['val_map50']} (max score difference {v['fp32']['max_abs_score_diff']:.1e}); "
        f"threshold {manifest['score_threshold']}, face margin {manifest['face_margin']} "
        f"({time.perf_counter() - start:.1f} s)",
        highlight=False,
    )


@export_app.command("ensemble")
def export_ensemble_cmd(
    bundles: Annotated[list[Path], typer.Argument(help="Classifier bundles with the same input and heads.")],
    out: Annotated[Path, typer.Option(help="Bundle folder to write.")],
    tta: Annotated[list[str] | None, typer.Option(help="Test-time augmentation the runtime applies: hflip.")] = None,
) -> None:
    """Soft voting (mean of probabilities) of classifier bundles, as one bundle; optional test-time augmentation."""
    ExportError = _export_imports()
    from ..export.ensemble import export_ensemble
    from ..runtime import SkinInferError

    try:
        manifest = export_ensemble(bundles, out, tta=tta)
    except (ExportError, SkinInferError, ValueError) as exc:
        raise fail(str(exc), 1) from None
    err.print(
        f"{out}: soft vote of {', '.join(manifest['ensemble']['members'])}"
        + (f", test-time augmentation {','.join(manifest['tta'])}" if manifest.get("tta") else ""),
        highlight=False,
    )


@export_app.command("verify")
def export_verify_cmd(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    images: Annotated[Path | None, typer.Option(help="Photos for a face parser's parity check.")] = None,
) -> None:
    """Re-check a bundle: checksums, graph against manifest, and parity with its source when torch is here."""
    from ..export.verify import verify_bundle
    from ..runtime import SkinInferError

    try:
        report = verify_bundle(bundle, images)
    except (SkinInferError, RuntimeError) as exc:
        raise fail(str(exc), 1) from None
    typer.echo(json.dumps(report, indent=2))
