"""Real ONNX graphs for the tests, built with onnx.helper, written as bundles through the real manifest writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from skin_infer.runtime.bundle import write_manifest
from skin_infer.runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD, InputSpec

FACE_LABELS = ["background", "skin", "nose", "l_eye", "r_eye", "mouth", "hair"]


def _save(model: onnx.ModelProto, path: Path) -> None:
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def classifier_graph(
    n_labels: int, size: int = 32, features: int = 8, cam: bool = True, seed: int = 0, logits_dim=None
):
    """Conv-ReLU features, global average pooling, a linear head; optional CAM = head weights x features.
    ``logits_dim``: what the graph declares for the logits' second dimension (a name makes it dynamic)."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.5, (features, 3, 3, 3)).astype(np.float32)
    w2 = rng.normal(0, 1.0, (features, n_labels)).astype(np.float32)
    b2 = rng.normal(0, 0.1, (n_labels,)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["input", "w1"], ["conv"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["conv"], ["features"]),
        helper.make_node("GlobalAveragePool", ["features"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w2", "b2"], ["logits"]),
    ]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", logits_dim or n_labels])]
    if cam:
        nodes.append(helper.make_node("Einsum", ["features", "w2"], ["cam"], equation="nchw,ck->nkhw"))
        side = (size - 1) // 2 + 1  # the stride-2 convolution's output, declared as real exports do
        outputs.append(helper.make_tensor_value_info("cam", TensorProto.FLOAT, ["batch", n_labels, side, side]))
    graph = helper.make_graph(
        nodes,
        "tiny_classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, size, size])],
        outputs,
        [
            numpy_helper.from_array(w1, "w1"),
            numpy_helper.from_array(w2, "w2"),
            numpy_helper.from_array(b2, "b2"),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def make_classifier_bundle(
    directory: Path,
    heads=(("dx", ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")),),
    size: int = 32,
    cam: bool = True,
    ordinal: tuple[str, ...] = (),
    seed: int = 0,
    **overrides,
) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    n_labels = sum(len(labels) for _, labels in heads)
    _save(classifier_graph(n_labels, size, cam=cam, seed=seed), directory / "model.onnx")
    manifest = {
        "kind": "classifier",
        "name": "tiny-test-classifier",
        "model": "model.onnx",
        "input": InputSpec.timm_eval(size, IMAGENET_MEAN, IMAGENET_STD).to_manifest(),
        "outputs": {"logits": "logits", **({"cam": "cam"} if cam else {})},
        "heads": [{"name": n, "labels": list(labels), "ordinal": n in ordinal} for n, labels in heads],
        "precision": "fp32",
        **overrides,
    }
    write_manifest(directory, manifest, ["model.onnx"])
    return directory


def parser_graph(skin_bias: float, size: int = 64):
    """A face parser whose logits favour 'skin' by ``skin_bias`` everywhere: a known answer to check wiring."""
    n = len(FACE_LABELS)
    bias = np.zeros(n, np.float32)
    bias[FACE_LABELS.index("skin")] = skin_bias
    w = np.zeros((n, 3, 1, 1), np.float32)
    nodes = [
        helper.make_node("AveragePool", ["pixel_values"], ["pooled"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Conv", ["pooled", "w", "b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_parser",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n, size // 4, size // 4])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(bias, "b")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def make_parser_bundle(directory: Path, skin_bias: float, size: int = 64) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _save(parser_graph(skin_bias, size), directory / "model.onnx")
    write_manifest(
        directory,
        {
            "kind": "face-parser",
            "model": "model.onnx",
            "input": InputSpec.stretched(size, name="pixel_values").to_manifest(),
            "outputs": {"logits": "logits"},
            "id2label": {str(i): label for i, label in enumerate(FACE_LABELS)},
            "skin_labels": ["skin", "nose"],
            "parts": {"eye": ["l_eye", "r_eye"], "nose": ["nose"], "mouth": ["mouth"]},
        },
        ["model.onnx"],
    )
    return directory
