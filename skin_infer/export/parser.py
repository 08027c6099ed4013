"""A face parser to a face-parser bundle the runtime's ``SegFormerParser`` runs.

The model comes from the Hugging Face Hub (``--hf org/name``, e.g. a CelebAMask-HQ face parser with 19
labels), a local folder saved with ``save_pretrained``, or a ``skin train-parser`` run directory (``--run``).
Labels come from the model's own ``id2label``:
published face parsers order them differently, so nothing here assumes an order; which labels are skin,
eyes, nose, mouth and brows is decided by their names and written into the manifest.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..runtime.bundle import write_manifest
from ..runtime.images import IMAGE_SUFFIXES, read_image
from ..runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD, InputSpec, preprocess
from ..train.hub import hub_reachable
from .bundle_writer import ExportError, producer, staged_bundle
from .optimize import session
from .torch_onnx import graph_to_onnx

DEFAULT_SKIN = ("skin", "nose")
PART_RULES = {  # part -> label-name fragments; eyeglasses are not eyes
    "eye": ("eye",),
    "brow": ("brow",),
    "nose": ("nose",),
    "mouth": ("mouth", "lip"),
}
FP32_AGREEMENT = 0.99
INT8_AGREEMENT = 0.95


class ParserGraph(nn.Module):
    """What the graph computes: logits (N, labels, h, w), or their argmax as a uint8 label map."""

    def __init__(self, model: nn.Module, labels_output: bool):
        super().__init__()
        self.model, self.labels_output = model, labels_output

    def forward(self, pixel_values):
        logits = self.model(pixel_values=pixel_values)
        logits = getattr(logits, "logits", logits)  # transformers returns an output object, our runs a tensor
        return logits.argmax(dim=1).to(torch.uint8) if self.labels_output else logits


def load_segformer(hf: str | None = None, local: Path | None = None, revision: str | None = None):
    from transformers import SegformerForSemanticSegmentation
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()

    if bool(hf) == bool(local):
        raise ExportError("give exactly one of --hf MODEL_ID or --local DIR")
    if local is not None:
        if not (Path(local) / "config.json").is_file():
            raise ExportError(f"{local}: no config.json; save the model there with save_pretrained().")
        return SegformerForSemanticSegmentation.from_pretrained(str(local)).eval(), str(local)
    if not hub_reachable():
        raise ExportError(
            f"--hf {hf}: the Hugging Face Hub cannot be reached from here; download the model "
            "elsewhere, save it with save_pretrained(), and pass that folder with --local."
        )
    return SegformerForSemanticSegmentation.from_pretrained(hf, revision=revision).eval(), hf


def label_roles(id2label: dict[int, str], skin: list[str] | None) -> tuple[list[str], dict[str, list[str]]]:
    names = list(id2label.values())
    skin = list(skin or [n for n in DEFAULT_SKIN if n in names])
    unknown = [n for n in skin if n not in names]
    if not skin or unknown:
        raise ExportError(
            f"skin labels {unknown or skin or '(none found)'} are not among the model's labels "
            f"{names}; name them with --skin-labels."
        )
    parts = {
        part: [
            n
            for n in names
            if any(f in n.lower() for f in frags) and "eye_g" not in n.lower() and "glass" not in n.lower()
        ]
        for part, frags in PART_RULES.items()
    }
    return skin, {p: v for p, v in parts.items() if v}


def segformer_spec(folder: str | None, size: int) -> InputSpec:
    """SegFormer's own preprocessing (its image processor config when the folder has one)."""
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    config = Path(folder) / "preprocessor_config.json" if folder and Path(folder).is_dir() else None
    if config and config.is_file():
        values = json.loads(config.read_text())
        mean, std = values.get("image_mean", mean), values.get("image_std", std)
    return InputSpec.stretched(size, mean, std, name="pixel_values")


def load_run_parser(run: Path):
    """A `skin train-parser` run: (model with its selected weights, id2label, config)."""
    from safetensors.torch import load_file

    from ..train.parsing import LABELS, ParseConfig, build_model

    run = Path(run)
    if not (run / "config.json").is_file() or not (run / "best.safetensors").is_file():
        raise ExportError(f"{run}: not a finished `skin train-parser` run (config.json and best.safetensors).")
    cfg = ParseConfig.load(run / "config.json")
    model = build_model(ParseConfig.from_dict({**cfg.__dict__, "init_weights": None}))
    model.load_state_dict(load_file(str(run / "best.safetensors")))
    return model.eval(), dict(enumerate(LABELS)), cfg


def sample_photos(folder: Path | None, limit: int = 8) -> tuple[list[np.ndarray], str]:
    """Photos to verify parity on, and what they are: ``folder``'s, or scikit-image's sample photos."""
    if folder is not None:
        paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
        if not paths:
            raise ExportError(f"--images {folder}: no photos found")
        return [read_image(p) for p in paths], f"{len(paths)} photos from {folder}"
    try:
        from skimage import data
    except ImportError:
        raise ExportError(
            "verification needs real photos: pass --images DIR, or install scikit-image for its sample photos"
        ) from None
    names = ("astronaut", "chelsea", "coffee", "rocket")
    photos = [np.ascontiguousarray(getattr(data, n)()[:, :, ::-1]) for n in names]
    return photos, f"scikit-image sample photos ({', '.join(names)}); pass --images for your own"


def compare(model: nn.Module, path: Path, batch: np.ndarray, labels_output: bool) -> dict:
    """How far the ONNX graph at ``path`` is from torch on ``batch``: pixel agreement of the label maps."""
    with torch.no_grad():
        expected = ParserGraph(model, labels_output=False).eval()(torch.from_numpy(batch)).numpy()
    sess = session(path)
    got = sess.run(None, {"pixel_values": batch})[0]
    result = {"images": int(len(batch))}
    got_labels = got if labels_output else got.argmax(1)
    if not labels_output:
        result["max_abs_logit_diff"] = float(np.abs(expected - got).max())
    result["pixel_agreement"] = float((expected.argmax(1) == got_labels).mean())
    return result


def export_parser(
    out: Path,
    *,
    hf: str | None = None,
    local: Path | None = None,
    run: Path | None = None,
    revision: str | None = None,
    size: int | None = None,
    precision: str = "fp32",
    labels_output: bool = False,
    skin_labels: list[str] | None = None,
    images: Path | None = None,
    opset: int = 17,
) -> dict:
    """Export and verify a parser; return the manifest written. ``size`` defaults to the run's, else 512."""
    if precision not in ("fp32", "int8"):
        raise ExportError(f"--precision {precision!r}: a face parser exports as fp32 or int8")
    if sum(x is not None for x in (hf, local, run)) != 1:
        raise ExportError("give exactly one of --hf MODEL_ID, --local DIR or --run RUN_DIR")
    if run is not None:
        model, id2label, cfg = load_run_parser(run)
        size = size or cfg.size
        spec = InputSpec.stretched(size, *cfg.mean_std, name="pixel_values")
        source, architecture = str(Path(run).resolve()), cfg.arch
    else:
        model, source = load_segformer(hf, local, revision)
        id2label = {int(k): v for k, v in model.config.id2label.items()}
        size = size or 512
        spec = segformer_spec(str(local) if local else None, size)
        architecture = "segformer"
    skin, parts = label_roles(id2label, skin_labels)
    photos, photos_text = sample_photos(images)
    batch = preprocess(photos, spec)
    graph = ParserGraph(model, labels_output).eval()
    output = "labels" if labels_output else "logits"
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        fp32, slim, stats = graph_to_onnx(graph, size, tmp, [output], opset, "SegFormer", "pixel_values")
        verification = {"photos": photos_text, "fp32": compare(model, fp32, batch, labels_output)}
        if verification["fp32"]["pixel_agreement"] < FP32_AGREEMENT:
            raise ExportError(
                f"ONNX Runtime's label maps agree with torch on only "
                f"{verification['fp32']['pixel_agreement']:.4f} of pixels (< {FP32_AGREEMENT}); "
                "the export is not kept."
            )
        final = fp32
        if precision == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            final = tmp / "int8.onnx"
            quantize_dynamic(
                str(slim), str(final), op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8
            )
            verification["int8"] = compare(model, final, batch, labels_output)
            if verification["int8"]["pixel_agreement"] < INT8_AGREEMENT:
                raise ExportError(
                    f"int8 label maps agree with fp32 torch on only "
                    f"{verification['int8']['pixel_agreement']:.4f} of pixels "
                    f"(< {INT8_AGREEMENT}); export fp32 instead."
                )
        manifest = {
            "kind": "face-parser",
            "name": Path(out).name,
            "model": "model.onnx",
            "input": spec.to_manifest(),
            "outputs": {output: output},
            "id2label": {str(k): v for k, v in sorted(id2label.items())},
            "skin_labels": skin,
            "parts": parts,
            "precision": precision,
            "architecture": architecture,
            "producer": producer(opset=opset),
            "optimization": stats,
            "verification": verification,
            "source": {("run" if run is not None else "model"): source, **({"revision": revision} if revision else {})},
        }
        with staged_bundle(Path(out)) as stage:
            (stage / "model.onnx").write_bytes(final.read_bytes())
            write_manifest(stage, manifest, ["model.onnx"])
    return manifest
