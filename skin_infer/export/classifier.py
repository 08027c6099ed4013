"""A `skin train` run directory to a classifier bundle: ONNX with a dynamic batch, optional in-graph CAM,
optimised, verified against torch on the run's own images, at fp32, int8 (gated) or fp16.

Class activation maps: when the head is global average pooling followed by one linear layer (ResNets,
EfficientNets, MobileNetV2, most timm CNNs), Grad-CAM of class c reduces exactly to
``ReLU(sum_k w_ck A_k) / (H W)``: the feature maps weighted by the classifier's weights. The graph outputs
``cam = einsum(features, W)`` (N, classes, h, w) and the runtime only picks a class, clips and upsamples.
Heads with layers after the pooling (MobileNetV3's conv head, ConvNeXt's norm) have no exact CAM.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..runtime.bundle import write_manifest
from ..train.data import input_spec
from ..train.model import model_mean_std
from .bundle_writer import ExportError, producer, staged_bundle
from .optimize import latency_ms
from .run_data import FP32_TOP1, VERIFY_IMAGES, balanced_accuracy, batches, image_paths, load_run, onnx_logits, parity
from .torch_onnx import graph_to_onnx

PRECISIONS = ("fp32", "int8", "fp16", "auto")


class ClassifierGraph(nn.Module):
    """What the graph computes: logits, and the CAM when the head allows an exact one."""

    def __init__(self, model: nn.Module, with_cam: bool):
        super().__init__()
        self.model, self.with_cam = model, with_cam

    def forward(self, x):
        features = self.model.forward_features(x)
        logits = self.model.forward_head(features)
        if not self.with_cam:
            return logits
        weight = self.model.get_classifier().weight
        return logits, torch.einsum("nchw,kc->nkhw", features, weight)


def cam_supported(model: nn.Module, size: int) -> bool:
    """True when logits == spatial mean of the CAM + bias, i.e. the head is GAP then one linear layer."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(head, nn.Linear) or not hasattr(model, "forward_features"):
        return False
    with torch.no_grad():
        features = model.forward_features(torch.randn(2, 3, size, size))
        if features.ndim != 4 or features.shape[1] != head.in_features:
            return False
        cam = torch.einsum("nchw,kc->nkhw", features, head.weight)
        expected = cam.mean(dim=(2, 3)) + (head.bias if head.bias is not None else 0)
        return torch.allclose(model.forward_head(features), expected, atol=1e-4, rtol=1e-4)


def export_classifier(
    run_dir: Path,
    out: Path,
    *,
    precision: str = "fp32",
    calib: str | None = None,
    eval_source: str | None = None,
    opset: int = 17,
    cam: bool | None = None,
    target: str = "cpu",
    max_drop: float = 0.01,
    name: str | None = None,
    logit_tolerance: float = 1e-3,
    domain: str | None = None,
    applies_to: str | None = None,
) -> dict:
    """Export and verify; return the manifest written. ``cam``: None adds it when exact, True requires it.
    ``logit_tolerance``: the largest |logit difference| to torch fp32 may show, relative to the largest logit."""
    if precision not in PRECISIONS:
        raise ExportError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    from ..runtime.classifier import APPLIES_TO, DOMAINS

    if domain is not None and domain not in DOMAINS or applies_to is not None and applies_to not in APPLIES_TO:
        raise ExportError(f"--domain {domain!r} / --input {applies_to!r}: choose from {DOMAINS} / {APPLIES_TO}")
    if domain is None:
        import warnings

        warnings.warn("no --domain given: the bundle will run on every region of every photo", stacklevel=2)
    if precision == "fp16" and target != "gpu":
        raise ExportError(
            "fp16 is for GPU execution: ONNX Runtime's CPU provider runs fp16 graphs slower than fp32. "
            "Export fp32 or int8 for CPUs, or pass --target gpu for a CUDA/TensorRT deployment."
        )
    cfg, model = load_run(run_dir)
    size = cfg.img_size
    with_cam = cam_supported(model, size)
    if cam and not with_cam:
        raise ExportError(
            f"{cfg.model}: its head is not global average pooling followed by one linear layer, so it "
            "has no exact class-activation map; export without --cam (explanations unavailable)."
        )
    graph = ClassifierGraph(model, with_cam and cam is not False).eval()
    spec = input_spec(cfg, *model_mean_std(model, cfg))  # the same eval transform the run trained with
    paths, _ = image_paths(cfg, None, "val", VERIFY_IMAGES)
    inputs = list(batches(paths, spec))
    outputs = ["logits"] + (["cam"] if graph.with_cam else [])
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        fp32, slim, stats = graph_to_onnx(graph, size, tmp, outputs, opset, cfg.model)
        check = parity(model, fp32, inputs)
        scale = max(1.0, float(np.abs(onnx_logits(fp32, inputs[:1])).max()))
        if check["top1_agreement"] < FP32_TOP1 or check["max_abs_logit_diff"] > logit_tolerance * scale:
            raise ExportError(
                f"{run_dir}: ONNX Runtime disagrees with torch (top-1 agreement "
                f"{check['top1_agreement']:.4f}, max |logit diff| {check['max_abs_logit_diff']:.2e}); "
                "the export is not kept."
            )
        verification = {"fp32": check}
        chosen, final, report = "fp32", fp32, None
        if precision in ("int8", "auto"):
            from .quantize import quantize_with_gate

            calib_paths, _ = image_paths(cfg, calib, "val", 256)
            eval_paths, eval_targets = image_paths(cfg, eval_source, "val", 10_000)
            eval_batches, n_labels = list(batches(eval_paths, spec)), len(cfg.heads[0]["labels"])
            report = quantize_with_gate(
                slim,
                fp32,
                tmp,
                list(batches(calib_paths, spec)),
                lambda path: balanced_accuracy(onnx_logits(path, eval_batches), eval_targets, n_labels),
                max_drop,
                required=precision == "int8",
                eval_images=len(eval_targets),
            )
            if report["kept"] is not None:
                int8 = Path(report["kept"]["path"])
                feed = {"input": inputs[0][:1]}
                report["latency_ms"] = {"fp32": latency_ms(fp32, feed), "int8": latency_ms(int8, feed)}
                faster = report["latency_ms"]["int8"] < report["latency_ms"]["fp32"]
                if precision == "int8" or faster:
                    chosen, final = "int8", int8
                    verification["int8"] = parity(model, int8, inputs)
                report["decision"] = (
                    f"int8 kept ({'faster' if faster else 'requested'})"
                    if chosen == "int8"
                    else "fp32 kept: int8 passed the gate but is not faster here"
                )
            else:
                report["decision"] = "fp32 kept: no int8 candidate passed the accuracy gate"
        elif precision == "fp16":
            from .quantize import to_fp16

            final, chosen = tmp / "fp16.onnx", "fp16"
            to_fp16(slim, final)
            verification["fp16"] = parity(model, final, inputs)
            if verification["fp16"]["top1_agreement"] < 0.98:
                raise ExportError(
                    f"fp16 top-1 agreement {verification['fp16']['top1_agreement']:.3f} < 0.98; the export is not kept."
                )
        metrics_path = Path(run_dir) / "metrics.json"
        run_metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
        manifest = {
            "kind": "classifier",
            "name": name or Path(out).name,
            "model": "model.onnx",
            "input": spec.to_manifest(),
            "outputs": {"logits": "logits", **({"cam": "cam"} if graph.with_cam else {})},
            "heads": cfg.heads,
            **({"domain": domain, "applies_to": applies_to or "region"} if domain else {}),
            "precision": chosen,
            "target": target,
            "architecture": cfg.model,
            "producer": producer(opset=opset),
            "optimization": stats,
            "verification": verification,
            "metrics": {
                k: run_metrics[k]
                for k in ("balanced_accuracy", "macro_f1", "accuracy", "best_epoch", "test")
                if k in run_metrics
            },
            "source": {"run": str(Path(run_dir).resolve())},
        }
        if report is not None:
            manifest["quantization"] = {k: v for k, v in report.items() if k != "kept"}
            manifest["quantization"]["candidates"] = [
                {k: v for k, v in c.items() if k != "path"} for c in report["candidates"]
            ]
        with staged_bundle(Path(out)) as stage:
            (stage / "model.onnx").write_bytes(final.read_bytes())
            write_manifest(stage, manifest, ["model.onnx"])
    return manifest
