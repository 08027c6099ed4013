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


def ort_optimize(source: Path, target: Path) -> None:
    """ONNX Runtime's graph optimisation at the portable 'extended' level, saved to ``target``."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])


def optimize(source: Path, target: Path, slim_target: Path) -> dict:
    """onnxslim ``source`` into ``slim_target`` (what quantisation starts from: standard ops only), then optimise
    that into ``target``; return node counts and sizes at each step."""
    import onnxslim

    onnx.save(onnxslim.slim(str(source)), str(slim_target))
    ort_optimize(slim_target, target)
    return {"before": graph_stats(source), "onnxslim": graph_stats(slim_target), "after": graph_stats(target)}


def session(path: Path, threads: int = 2) -> ort.InferenceSession:
    """A CPU session with a fixed thread count: what export measures and verifies with."""
    return create_session(path, "cpu", threads)


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
