"""ImageNet MobileNetV2 weights from the TFLite model's ONNX conversion into timm's ``mobilenetv2_100``.

The TFLite graph has batch norm folded into its 53 convolutions; they map in order onto timm's 52
convolutions plus the classifier. Each timm BatchNorm is set to the identity with the folded bias
(``running_var = 1 - eps``), so the network computes what the TFLite one does, up to padding: TF pads
stride-2 convolutions on the bottom/right only (timm's ``pad_type="same"`` reproduces it exactly).
The weights it writes are for ``--init-weights``; inputs are scaled to [-1, 1] (mean 0.5, std 0.5).

    python -m skin_infer.train.import_weights ../shared/weights/imagenet_mobilenet_v2/mobilenet_v2_1.0_224_quant.onnx \\
        mobilenet_v2_imagenet.safetensors
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import timm
import torch
from onnx import numpy_helper
from safetensors.torch import save_file

MEAN, STD = [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]


def _conv_params(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight, bias) of every Conv in graph order, weights dequantized exactly as the graph does."""
    graph = onnx.load(str(path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}

    def value(name: str) -> np.ndarray:
        if name in init:
            return init[name].astype(np.float32)
        node = producer[name]
        if node.op_type == "DequantizeLinear":
            q, scale, zero = (value(i) for i in node.input)
            return ((q - zero) * scale).astype(np.float32)
        if node.op_type == "QuantizeLinear":
            x, scale, zero = (value(i) for i in node.input)
            return np.clip(np.round(x / scale) + zero, 0, 255)
        raise ValueError(f"unexpected {node.op_type} feeding a weight")

    return [(value(n.input[1]), value(n.input[2])) for n in graph.node if n.op_type == "Conv"]


def convert(onnx_path: Path, pad_type: str = "") -> dict[str, torch.Tensor]:
    """A state dict for timm's mobilenetv2_100 with a 1001-class ImageNet classifier (index 0: background)."""
    params = _conv_params(onnx_path)
    model = timm.create_model("mobilenetv2_100", num_classes=1001, pad_type=pad_type)
    # Each convolution is followed by its batch norm in module order (timm names them bn1/bn2/bn3 by block type).
    pairs, conv = [], None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            conv = name
        elif isinstance(module, torch.nn.BatchNorm2d) and conv is not None:
            pairs.append((conv, name, module.eps))
            conv = None
    if len(params) != len(pairs) + 1:
        raise ValueError(f"{onnx_path}: {len(params)} convolutions, expected {len(pairs) + 1} (MobileNetV2 1.0)")
    state = {}
    for (conv_name, bn, eps), (weight, bias) in zip(pairs, params, strict=False):
        state[f"{conv_name}.weight"] = torch.from_numpy(weight)
        state[f"{bn}.weight"] = torch.ones(len(bias))
        state[f"{bn}.bias"] = torch.from_numpy(bias)
        state[f"{bn}.running_mean"] = torch.zeros(len(bias))
        state[f"{bn}.running_var"] = torch.full((len(bias),), 1.0 - eps)
    weight, bias = params[-1]
    state["classifier.weight"] = torch.from_numpy(weight.reshape(weight.shape[0], -1))
    state["classifier.bias"] = torch.from_numpy(bias)
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"conversion left {len(missing)} tensors unset, e.g. {missing[:3]}")
    return state


def main(argv: list[str] | None = None) -> None:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 2:
        raise SystemExit("usage: python -m skin_infer.train.import_weights MOBILENET_V2.onnx OUT.safetensors")
    state = convert(Path(args[0]))
    save_file({k: v.contiguous() for k, v in state.items()}, args[1])
    print(f"wrote {args[1]}: {len(state)} tensors for timm mobilenetv2_100 (use mean/std {MEAN}/{STD})")


if __name__ == "__main__":
    main()
