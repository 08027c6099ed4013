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

import cv2
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
    "inner_mouth": ("mouth",),  # teeth, when visible: a white reference for the light (runtime/light.py)
}
FP32_AGREEMENT = 0.99
INT8_AGREEMENT = 0.95
INT8_MAX_F1_DROP = 0.01


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


def int8_gate(model: nn.Module, cfg, fp32: Path, slim: Path, spec: InputSpec, tmp: Path, output: str) -> dict:
    """Static int8 (QDQ) calibrated on training photos, kept only if, on the run's validation pairs, its mean F1
    stays within ``INT8_MAX_F1_DROP`` of fp32 and its label maps agree with fp32's on ``INT8_AGREEMENT`` of pixels."""
    from ..runtime.segmentation import confusion, parse_metrics
    from ..train.parsing import LABELS, load_pair, read_pairs, validation_split
    from .optimize import latency_ms
    from .quantize import prepare_for_int8, static_int8

    train_pairs, val_pairs = validation_split(read_pairs(Path(cfg.data) / "train"), cfg)
    calib = [preprocess([load_pair(i, m, cfg.size)[0][:, :, ::-1] for i, m in train_pairs[k : k + 8]], spec)
             for k in range(0, 64, 8)]  # fmt: skip
    val = [load_pair(i, m, cfg.size) for i, m in val_pairs]
    prepared = prepare_for_int8(slim, tmp / "int8_prepared.onnx")
    int8 = static_int8(prepared, tmp / "int8_qdq.onnx", calib, input_name="pixel_values")

    def label_maps(path: Path) -> list[np.ndarray]:
        sess = session(path)
        maps = []
        for k in range(0, len(val), 16):
            x = preprocess([rgb[:, :, ::-1] for rgb, _ in val[k : k + 16]], spec)
            out = sess.run(None, {"pixel_values": x})[0]
            maps += list(out if output == "labels" else out.argmax(1))
        return maps

    def f1(maps: list[np.ndarray]) -> float:
        matrix = sum(
            confusion(m.astype(np.uint8), cv2.resize(lb, m.shape[::-1], interpolation=cv2.INTER_NEAREST), len(LABELS))
            for m, (_, lb) in zip(maps, val, strict=True)
        )
        return parse_metrics(matrix, LABELS)["mean_f1"]

    ref, got = label_maps(fp32), label_maps(int8)
    agreement = float(np.mean([np.mean(a == b) for a, b in zip(ref, got, strict=True)]))
    f1_fp32, f1_int8 = f1(ref), f1(got)
    feed = {"pixel_values": calib[0][:1]}
    latency = {"fp32": latency_ms(fp32, feed), "int8": latency_ms(int8, feed)}
    passed = agreement >= INT8_AGREEMENT and f1_fp32 - f1_int8 <= INT8_MAX_F1_DROP
    return {
        "val_pairs": len(val),
        "labels": len(LABELS),
        "pixel_agreement_with_fp32": agreement,
        "mean_f1": {"fp32": f1_fp32, "int8": f1_int8},
        "latency_ms": latency,
        "passed": passed,
        "faster": latency["int8"] < latency["fp32"],
        "decision": (
            f"mean F1 {f1_fp32:.4f} -> {f1_int8:.4f} (max drop {INT8_MAX_F1_DROP}), pixel agreement "
            f"{agreement:.4f} (min {INT8_AGREEMENT}), {latency['fp32']:.1f} -> {latency['int8']:.1f} ms"
        ),
        "path": int8,
    }


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
    if precision not in ("fp32", "int8", "auto"):
        raise ExportError(f"--precision {precision!r}: a face parser exports as fp32, int8 or auto")
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
        final, chosen = fp32, "fp32"
        if precision in ("int8", "auto") and run is not None:
            gate = int8_gate(model, cfg, fp32, slim, spec, tmp, output)
            verification["int8_gate"] = {k: v for k, v in gate.items() if k != "path"}
            if gate["passed"] and (precision == "int8" or gate["faster"]):
                final, chosen = gate["path"], "int8"
                verification["int8"] = compare(model, final, batch, labels_output)
            elif precision == "int8":
                raise ExportError(f"int8 refused by the gate ({gate['decision']}); export fp32 (or auto).")
        elif precision in ("int8", "auto"):
            from onnxruntime.quantization import QuantType, quantize_dynamic

            final, chosen = tmp / "int8.onnx", "int8"
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
            "precision": chosen,
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
