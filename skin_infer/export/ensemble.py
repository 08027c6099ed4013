"""`skin export ensemble A B ... --out E`: soft voting of classifier bundles as one bundle the runtime runs.

The members must read the same input (one preprocessing) and answer the same heads. Their graphs are put side
by side in one ONNX graph that shares the input; for each head, the members' softmax probabilities are averaged
and the graph outputs their logarithm as ``logits``, so the runtime's softmax gives back the average exactly.
``tta=["hflip"]`` in the manifest asks the runtime to average each crop with its mirror image too.
"""

from __future__ import annotations

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


def export_ensemble(members: list[Path], out: Path, *, tta: list[str] | None = None, name: str | None = None) -> dict:
    """Write the ensemble bundle; return its manifest."""
    if len(members) < 2 and not tta:
        raise ExportError("an ensemble needs two or more bundles (or one with --tta)")
    bundles = [load_bundle(m, kind="classifier") for m in members]
    first = bundles[0].manifest
    for bundle in bundles[1:]:
        if bundle.input_spec != bundles[0].input_spec:
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
    graph = helper.make_graph(
        nodes,
        "ensemble",
        [graphs[0].graph.input[0]],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", n_labels])],
        inits,
    )
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
        "outputs": {"logits": "logits"},
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
