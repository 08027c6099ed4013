"""Graph optimisation shared by every export: onnxslim, then ONNX Runtime at the portable 'extended' level.

The 'all' level writes layouts specific to the machine that ran it, so it is never saved into a bundle.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from ..runtime.session import create_session


def graph_stats(path: Path) -> dict:
    model = onnx.load(str(path), load_external_data=False)
    return {"nodes": len(model.graph.node), "bytes": Path(path).stat().st_size}


# Where the integer kernels read their weights (and the weights' zero points).
WEIGHT_INPUTS = {"QLinearConv": (3, 5), "QLinearMatMul": (3, 5), "QGemm": (3, 5), "MatMulInteger": (1, 3)}


def unshare_quantized_weights(model: onnx.ModelProto) -> int:
    """Give every other reader of an integer kernel's weight its own copy; returns how many were copied.

    On x86 CPUs without VNNI the runtime has ONNX Runtime rewrite int8 weights to uint8 in place (the session
    option ``session.x64quantprecision``); a weight also read by another node (the classifier's weights behind
    the in-graph CAM) makes that rewrite fail, and the graph does not load."""
    weights = {
        node.input[i]
        for node in model.graph.node
        for i in WEIGHT_INPUTS.get(node.op_type, ())
        if i < len(node.input) and node.input[i]
    }
    initializers = {init.name: init for init in model.graph.initializer}
    copies = {}
    for node in model.graph.node:
        slots = WEIGHT_INPUTS.get(node.op_type, ())
        for i, name in enumerate(node.input):
            if name in weights and name in initializers and i not in slots:
                if name not in copies:
                    copy = onnx.TensorProto()
                    copy.CopyFrom(initializers[name])
                    copy.name = copies[name] = f"{name}_copy"
                    model.graph.initializer.append(copy)
                node.input[i] = copies[name]
    return len(copies)


def ort_optimize(source: Path, target: Path) -> None:
    """ONNX Runtime's graph optimisation at the portable 'extended' level, saved to ``target`` (with no weight
    shared between an integer kernel and another node). No CPU-specific option is set here: the saved graph
    must run the same on every CPU."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    model = onnx.load(str(target))
    if unshare_quantized_weights(model):
        onnx.save(model, str(target))


def optimize(source: Path, target: Path, slim_target: Path) -> dict:
    """onnxslim ``source`` into ``slim_target`` (what quantisation starts from: standard ops only), then optimise
    that into ``target``; return node counts and sizes at each step."""
    import onnxslim

    onnx.save(onnxslim.slim(str(source)), str(slim_target))
    ort_optimize(slim_target, target)
    return {"before": graph_stats(source), "onnxslim": graph_stats(slim_target), "after": graph_stats(target)}


def session(path: Path, threads: int = 2) -> ort.InferenceSession:
    """A CPU session with a fixed thread count: what export measures and verifies with."""
    return create_session(path, "cpu", threads, cache=False)  # a graph being exported: nothing to reuse


def latency_ms(path: Path, feed: dict[str, np.ndarray], runs: int = 30, threads: int = 2) -> float:
    """Median latency of one call, after warm-up, with a fixed thread count."""
    sess = session(path, threads)
    for _ in range(5):
        sess.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3
