"""PyTorch vs ONNX Runtime on efficientnet_b0 at batch 1, same threads, in one run (pytest-benchmark group
"efficientnet_b0"). `skin bench` is the full table; this keeps the headline ratio in the pytest suite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from shared_data import HAM

from skin_infer.runtime import Classifier, read_image
from skin_infer.runtime.preprocess import preprocess

THREADS = 2
FLOOR = json.loads((Path(__file__).parent / "floor.json").read_text())
results: dict[str, float] = {}


@pytest.fixture(scope="module")
def batch(efficientnet_b0_bundle):
    spec = Classifier(efficientnet_b0_bundle, "cpu").bundle.input_spec
    return preprocess([read_image(sorted((HAM / "mel").iterdir())[0])], spec)


@pytest.mark.benchmark(group="efficientnet_b0")
def test_torch_eager(benchmark, efficientnet_b0, batch):
    torch = pytest.importorskip("torch")
    torch.set_num_threads(THREADS)
    model, _ = efficientnet_b0
    x = torch.from_numpy(batch)
    with torch.inference_mode():
        benchmark.pedantic(model, args=(x,), rounds=30, warmup_rounds=5)
    results["torch"] = benchmark.stats.stats.median


@pytest.mark.benchmark(group="efficientnet_b0")
def test_onnxruntime_fp32(benchmark, efficientnet_b0_bundle, batch):
    session = Classifier(efficientnet_b0_bundle, "cpu", threads=THREADS).session
    benchmark.pedantic(session.run, args=(None, {"input": batch}), rounds=30, warmup_rounds=5)
    results["onnxruntime"] = benchmark.stats.stats.median


def test_speedup_floor():
    if set(results) != {"torch", "onnxruntime"}:
        pytest.skip("needs both engine benchmarks in this run")
    ratio = results["torch"] / results["onnxruntime"]
    print(f"\nefficientnet_b0 batch 1, {THREADS} threads: ONNX Runtime {ratio:.2f}x faster than torch eager")
    assert np.isfinite(ratio) and ratio >= FLOOR["efficientnet_b0"]
