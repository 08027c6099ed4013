"""Reduced precision that has to earn its place: static int8 (QDQ) behind an accuracy gate, and fp16 for GPUs.

int8 candidates, tried in order until the gate's measurements are in: per-channel weights; per-tensor;
per-channel with the first and last layers kept in float; and per-channel with the layers whose activations
ONNX Runtime's QDQ debugging tools find least faithful (lowest signal-to-noise against fp32) also kept in
float. Each is scored on a labelled set by the caller's metric (a classifier's balanced accuracy, a detector's val
mAP50); the best that stays within ``max_drop`` of fp32 is kept. EfficientNet-style SiLU and depthwise layers are
the usual reason the first ones fail.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quant_pre_process, quantize_static

from .bundle_writer import ExportError
from .optimize import ort_optimize

SENSITIVE_FRACTION = 0.1  # share of quantisable nodes the sensitivity remedy keeps in float


class BatchReader(CalibrationDataReader):
    def __init__(self, batches: list[np.ndarray], input_name: str = "input"):
        self._iter = iter({input_name: b} for b in batches)

    def get_next(self):
        return next(self._iter, None)


def _quantisable(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]


def _sensitive_nodes(float_path: Path, qdq_path: Path, batches: list[np.ndarray], tmp: Path) -> list[str]:
    """Names of the float nodes whose outputs the int8 model reproduces worst (lowest SNR)."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    aug_float, aug_qdq = tmp / "aug_float.onnx", tmp / "aug_qdq.onnx"
    modify_model_output_intermediate_tensors(str(float_path), str(aug_float))
    modify_model_output_intermediate_tensors(str(qdq_path), str(aug_qdq))
    sample = batches[:2]
    matching = create_activation_matching(
        collect_activations(str(aug_qdq), BatchReader(sample)), collect_activations(str(aug_float), BatchReader(sample))
    )
    errors = compute_activation_error(matching)
    model = onnx.load(str(float_path))
    producer = {o: n.name for n in _quantisable(model) for o in n.output}
    ranked = sorted((e.get("xmodel_err", np.inf), t) for t, e in errors.items() if t in producer)
    k = max(3, round(SENSITIVE_FRACTION * len(producer)))
    return [producer[t] for _, t in ranked[:k]]


def prepare_for_int8(float_path: Path, prepared: Path) -> Path:
    """Shape inference and cleanup, as ONNX Runtime's quantizer asks; node names then stay fixed."""
    quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
    return prepared


def static_int8(
    float_path: Path,
    qdq: Path,
    calib: list[np.ndarray],
    per_channel: bool = True,
    exclude: list[str] | None = None,
    input_name: str = "input",
) -> Path:
    """Static QDQ int8 (uint8 activations, int8 weights) of a prepared graph, calibrated on ``calib``; returns the
    optimised graph."""
    quantize_static(
        str(float_path),
        str(qdq),
        BatchReader(calib, input_name),
        quant_format=QuantFormat.QDQ,
        per_channel=per_channel,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=exclude or [],
        extra_options={"ActivationSymmetric": False},
    )
    optimized = qdq.with_suffix(".opt.onnx")
    ort_optimize(qdq, optimized)
    return optimized


def quantize_with_gate(
    float_path: Path,
    fp32_optimized: Path,
    tmp: Path,
    calib: list[np.ndarray],
    score: Callable[[Path], float],
    max_drop: float,
    required: bool,
    metric: str = "balanced_accuracy",
    eval_images: int = 0,
    input_name: str = "input",
) -> dict:
    """Try the int8 candidates, each scored by ``score(graph path)`` (named ``metric``); return a report with every
    candidate's figures and the one ``kept`` (or None)."""
    reference = score(fp32_optimized)
    float_path = prepare_for_int8(float_path, tmp / "int8_prepared.onnx")
    model = onnx.load(str(float_path))
    nodes = _quantisable(model)
    ends = [nodes[0].name, nodes[-1].name]
    candidates = [
        ("per-channel", True, []),
        ("per-tensor", False, []),
        ("per-channel, first and last layers in float", True, ends),
    ]
    report = {
        f"fp32_{metric}": reference,
        "max_drop": max_drop,
        "eval_images": eval_images,
        "calibration_images": int(sum(len(b) for b in calib)),
        "candidates": [],
        "kept": None,
    }

    def attempt(name: str, per_channel: bool, exclude: list[str]) -> dict:
        qdq = tmp / f"int8_{len(report['candidates'])}.onnx"
        optimized = static_int8(float_path, qdq, calib, per_channel, exclude, input_name)
        value = score(optimized)
        entry = {
            "name": name,
            "per_channel": per_channel,
            "float_nodes": len(exclude),
            metric: value,
            "drop": reference - value,
            "passed": reference - value <= max_drop,
            "path": str(optimized),
            "qdq_path": str(qdq),
        }
        report["candidates"].append(entry)
        return entry

    for name, per_channel, exclude in candidates:
        attempt(name, per_channel, exclude)
    if not any(c["passed"] for c in report["candidates"]):
        sensitive = _sensitive_nodes(float_path, Path(report["candidates"][0]["qdq_path"]), calib, tmp)
        attempt(
            f"per-channel, {len(set(sensitive + ends))} most sensitive layers in float",
            True,
            sorted(set(sensitive + ends)),
        )
    passing = [c for c in report["candidates"] if c["passed"]]
    if passing:
        report["kept"] = max(passing, key=lambda c: (c[metric], -c["float_nodes"]))
    elif required:
        lines = "; ".join(
            f"{c['name']}: {c[metric]:.4f} (drop {100 * c['drop']:.1f} points)" for c in report["candidates"]
        )
        raise ExportError(
            f"int8 refused: fp32 {metric.replace('_', ' ')} {reference:.4f} on {eval_images} images, and no "
            f"int8 candidate stays within {100 * max_drop:.1f} points — {lines}. Export fp32 (or auto)."
        )
    for c in report["candidates"]:
        c.pop("qdq_path")
    return report


def to_fp16(float_path: Path, target: Path) -> None:
    """fp16 weights and compute for GPUs; inputs and outputs stay fp32, Resize and reductions stay fp32."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(
        onnx.load(str(float_path)),
        keep_io_types=True,
        op_block_list=["Resize", "Upsample", "ReduceMean", "Softmax", "TopK"],
    )
    onnx.save(model, str(target))
