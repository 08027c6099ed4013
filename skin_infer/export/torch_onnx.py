"""A torch module to an optimised ONNX graph with a dynamic batch: the one export path for every model kind."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from .bundle_writer import ExportError
from .optimize import optimize


def graph_to_onnx(
    graph: nn.Module,
    size: int,
    tmp: Path,
    outputs: list[str],
    opset: int = 17,
    what: str = "model",
    input_name: str = "input",
) -> tuple[Path, Path, dict]:
    """Export ``graph`` with a dynamic batch, slim and optimise it: (optimised path, slim path, stats)."""
    raw, fp32, slim = tmp / "raw.onnx", tmp / "fp32.onnx", tmp / "slim.onnx"
    try:
        with warnings.catch_warnings():  # tracer and exporter chatter says nothing about this graph: parity does
            warnings.simplefilter("ignore")
            torch.onnx.export(
                graph,
                torch.zeros(1, 3, size, size),
                str(raw),
                input_names=[input_name],
                output_names=outputs,
                dynamic_axes={n: {0: "batch"} for n in [input_name, *outputs]},
                opset_version=opset,
                dynamo=False,
            )
    except Exception as exc:
        raise ExportError(
            f"{what}: torch could not export this architecture to ONNX opset {opset} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0]})."
        ) from None
    return fp32, slim, optimize(raw, fp32, slim)
