"""ImageNet MobileNetV2 weights from the TFLite model's ONNX conversion into timm's ``mobilenetv2_100``.

The TFLite graph has batch norm folded into its 53 convolutions; they map in order onto timm's 52
convolutions plus the classifier. Each timm BatchNorm must then compute ``x + folded_bias``. With the
identity statistics that is exact for inference, but training normalises with batch statistics, which
would rescale every layer and kill the network; so the statistics of each convolution's output are
measured on real images (``calib``) and each BatchNorm gets ``running_mean = m``, ``running_var = v``,
``weight = sqrt(v + eps)``, ``bias = m + folded_bias``: the same function at inference, and batch
statistics close to the running ones in training. Padding: TF pads stride-2 convolutions on the
bottom/right only (timm's ``pad_type="same"`` reproduces it exactly). Inputs are scaled to [-1, 1].

    python -m skin_infer.train.import_weights ../shared/weights/imagenet_mobilenet_v2/mobilenet_v2_1.0_224_quant.onnx \\
        mobilenet_v2_imagenet.safetensors --calib ../shared/data/ham10000/nv
"""

from __future__ import annotations

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


def calibrate_norms(state: dict[str, torch.Tensor], images: list[Path], pad_type: str = "", size: int = 224) -> None:
    """Give every BatchNorm the statistics of its convolution's output on ``images`` (see the module doc)."""
    import cv2

    from ..runtime.images import read_image

    model = timm.create_model("mobilenetv2_100", num_classes=1001, pad_type=pad_type).eval()
    model.load_state_dict(state)
    stats, hooks = {}, []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):

            def hook(mod, inputs, _output, name=name):
                x = inputs[0].double()
                stats[name] = (x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3)))

            hooks.append(module.register_forward_hook(hook))
    batch = []
    for path in images:
        rgb = cv2.cvtColor(cv2.resize(read_image(path), (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        batch.append(torch.from_numpy(rgb).permute(2, 0, 1).float() / 127.5 - 1)
    with torch.no_grad():
        model(torch.stack(batch))
    for hook in hooks:
        hook.remove()
    for name, (mean, var) in stats.items():
        eps = dict(model.named_modules())[name].eps
        state[f"{name}.running_mean"] = mean.float()
        state[f"{name}.running_var"] = var.float()
        state[f"{name}.weight"] = (var + eps).sqrt().float()
        state[f"{name}.bias"] = (mean + state[f"{name}.bias"].double()).float()


def main(argv: list[str] | None = None) -> None:
    import argparse

    from ..runtime.images import IMAGE_SUFFIXES

    parser = argparse.ArgumentParser(
        prog="python -m skin_infer.train.import_weights",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("onnx", type=Path, help="mobilenet_v2_1.0_224_quant.onnx")
    parser.add_argument("out", type=Path, help="safetensors file to write")
    parser.add_argument("--calib", type=Path, required=True, help="folder of images for the BatchNorm statistics")
    parser.add_argument("--max-images", type=int, default=128)
    args = parser.parse_args(argv)
    images = sorted(p for p in args.calib.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[: args.max_images]
    if not images:
        raise SystemExit(f"--calib {args.calib}: no images found")
    state = convert(args.onnx)
    calibrate_norms(state, images)
    save_file({k: v.contiguous() for k, v in state.items()}, str(args.out))
    print(
        f"wrote {args.out}: {len(state)} tensors for timm mobilenetv2_100, norms from {len(images)} images "
        f"(use mean/std {MEAN}/{STD})"
    )


if __name__ == "__main__":
    main()
