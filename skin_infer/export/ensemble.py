"""`skin export ensemble A B ... --out E`: soft voting of classifier bundles as one bundle the runtime runs.

The members must read the same input (one preprocessing, except for the size) and answer the same heads. Their
graphs are put side by side in one ONNX graph that shares the input: the largest member's; a member trained
smaller gets it resized in the graph (the same centre crop, so the same field of view, at its resolution). For
each head, the members' softmax probabilities are averaged and the graph outputs their logarithm as ``logits``,
so the runtime's softmax gives back the average exactly.
``tta=["hflip"]`` in the manifest asks the runtime to average each crop with its mirror image too.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, compose, helper, numpy_helper

from ..runtime.bundle import load_bundle, write_manifest
from .bundle_writer import ExportError, producer, staged_bundle

TTA = ("hflip",)


def _member(path: Path, prefix: str, input_name: str) -> onnx.ModelProto:
    bundle = load_bundle(path, kind="classifier")  # checksums verified
    model = onnx.load_from_string(bundle.model_bytes)
    model = compose.add_prefix(model, prefix, rename_inputs=False)
    if [i.name for i in model.graph.input] != [input_name]:
        raise ExportError(f"{path}: its graph input is not {input_name!r}; re-export it.")
    return model


def _resized(member: onnx.ModelProto, prefix: str, input_name: str, scale: tuple[float, float]) -> list:
    """Feed ``member`` the shared input resized by ``scale`` (height, width): returns the Resize node and its
    scales; the member's nodes read the resized tensor instead of the input."""
    resized = f"{prefix}resized_input"
    for node in member.graph.node:
        node.input[:] = [resized if name == input_name else name for name in node.input]
    scales = numpy_helper.from_array(np.array([1.0, 1.0, *scale], np.float32), f"{prefix}resize_scales")
    node = helper.make_node("Resize", [input_name, "", scales.name], [resized], mode="linear")
    return [node, scales]


def _cam_sizes(graphs: list[onnx.ModelProto], bundles) -> dict[int, tuple[int, int]]:
    """Member index -> its CAM's (height, width), when every member has a CAM of a fixed size; else empty."""
    sizes = {}
    for i, (graph, bundle) in enumerate(zip(graphs, bundles, strict=True)):
        name = bundle.manifest["outputs"].get("cam")
        found = [o for o in graph.graph.output if name and o.name == f"m{i}_{name}"]
        dims = [d.dim_value for d in found[0].type.tensor_type.shape.dim[2:]] if found else []
        if len(dims) != 2 or not all(dims):
            return {}
        sizes[i] = (dims[0], dims[1])
    return sizes


def export_ensemble(members: list[Path], out: Path, *, tta: list[str] | None = None, name: str | None = None) -> dict:
    """Write the ensemble bundle; return its manifest."""
    if len(members) < 2 and not tta:
        raise ExportError("an ensemble needs two or more bundles (or one with --tta)")
    bundles = [load_bundle(m, kind="classifier") for m in members]
    # the shared input: the largest member's (the runtime's preprocessing then loses nothing any member wants)
    bundles.sort(key=lambda b: -b.input_spec.size[0] * b.input_spec.size[1])
    first, spec = bundles[0].manifest, bundles[0].input_spec
    for bundle in bundles[1:]:
        if dataclasses.replace(bundle.input_spec, size=spec.size) != spec or spec.layout != "NCHW":
            raise ExportError(f"{bundle.path}: reads its input differently from {bundles[0].path}; they cannot vote.")
        if bundle.manifest["heads"] != first["heads"] or bundle.manifest.get("domain") != first.get("domain"):
            raise ExportError(f"{bundle.path}: other heads or domain than {bundles[0].path}; they cannot vote.")
    unknown = sorted(set(tta or []) - set(TTA))
    if unknown:
        raise ExportError(f"--tta {unknown}: known test-time augmentations are {', '.join(TTA)}")
    input_name = bundles[0].input_spec.name or "input"
    graphs = [_member(b.path, f"m{i}_", input_name) for i, b in enumerate(bundles)]
    nodes, inits = [], []
    for i, (graph, bundle) in enumerate(zip(graphs, bundles, strict=True)):
        size = bundle.input_spec.size
        if size != spec.size:
            resize, scales = _resized(graph, f"m{i}_", input_name, (size[0] / spec.size[0], size[1] / spec.size[1]))
            nodes.append(resize)
            inits.append(scales)
        nodes += list(graph.graph.node)
        inits += list(graph.graph.initializer)
        logits = f"m{i}_{bundle.manifest['outputs']['logits']}"
        start = 0
        for h, head in enumerate(first["heads"]):
            stop = start + len(head["labels"])
            for tensor, value in ((f"s{i}_{h}", start), (f"e{i}_{h}", stop)):
                inits.append(numpy_helper.from_array(np.array([value], np.int64), tensor))
            nodes.append(helper.make_node("Slice", [logits, f"s{i}_{h}", f"e{i}_{h}", "axis1"], [f"l{i}_{h}"]))
            nodes.append(helper.make_node("Softmax", [f"l{i}_{h}"], [f"p{i}_{h}"], axis=1))
            start = stop
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "axis1"))
    inits.append(numpy_helper.from_array(np.array(1.0 / len(bundles), np.float32), "share"))
    heads = []
    for h in range(len(first["heads"])):
        nodes.append(helper.make_node("Sum", [f"p{i}_{h}" for i in range(len(bundles))], [f"sum_{h}"]))
        nodes.append(helper.make_node("Mul", [f"sum_{h}", "share"], [f"mean_{h}"]))
        nodes.append(helper.make_node("Log", [f"mean_{h}"], [f"log_{h}"]))
        heads.append(f"log_{h}")
    nodes.append(helper.make_node("Concat", heads, ["logits"], axis=1))
    n_labels = sum(len(h["labels"]) for h in first["heads"])
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_labels])]
    cam_size = _cam_sizes(graphs, bundles)
    if cam_size:  # every member has a class-activation map: their mean, at the finest member's resolution
        target = max(cam_size.values())
        for i, size in cam_size.items():
            cam = f"m{i}_{bundles[i].manifest['outputs']['cam']}"
            if size != target:
                scales = numpy_helper.from_array(
                    np.array([1.0, 1.0, target[0] / size[0], target[1] / size[1]], np.float32), f"cam_scales{i}"
                )
                inits.append(scales)
                nodes.append(helper.make_node("Resize", [cam, "", scales.name], [f"cam{i}"], mode="linear"))
                cam = f"cam{i}"
            cam_size[i] = cam
        nodes.append(helper.make_node("Sum", list(cam_size.values()), ["cam_sum"]))
        nodes.append(helper.make_node("Mul", ["cam_sum", "share"], ["cam"]))
        outputs.append(helper.make_tensor_value_info("cam", TensorProto.FLOAT, ["batch", n_labels, *target]))
    graph = helper.make_graph(nodes, "ensemble", [graphs[0].graph.input[0]], outputs, inits)
    opsets = {}
    for model in graphs:
        for op in model.opset_import:
            opsets[op.domain] = max(opsets.get(op.domain, 0), op.version)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
        ir_version=max(m.ir_version for m in graphs),
    )
    onnx.checker.check_model(model)
    manifest = {
        "kind": "classifier",
        "name": name or Path(out).name,
        "model": "model.onnx",
        "input": first["input"],
        "outputs": {"logits": "logits", **({"cam": "cam"} if cam_size else {})},
        "heads": first["heads"],
        **{k: first[k] for k in ("domain", "applies_to") if k in first},
        **({"tta": list(tta)} if tta else {}),
        "precision": "+".join(sorted({b.manifest.get("precision", "fp32") for b in bundles})),
        "architecture": "ensemble of " + ", ".join(b.manifest.get("architecture", "?") for b in bundles),
        "ensemble": {"voting": "soft (mean of probabilities)", "members": [b.name for b in bundles]},
        "producer": producer(),
    }
    with staged_bundle(Path(out)) as stage:
        onnx.save(model, str(stage / "model.onnx"))
        write_manifest(stage, manifest, ["model.onnx"])
    return manifest
