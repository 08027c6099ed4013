"""One benchmark row, measured in a fresh (spawned) process: latency percentiles, throughput, peak memory.

Every engine gets the same intra-op thread count, a warm-up and the median of many runs; torch runs under
``inference_mode``.
"""

from __future__ import annotations

import resource
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Job:
    engine: str  # torch | onnxruntime
    batch_path: str  # .npy input batch
    threads: int
    rounds: int
    warmup: int
    onnx_path: str | None = None
    timm_model: str | None = None  # torch classifier: timm name, random weights unless state_path
    segformer_dir: str | None = None  # torch SegFormer: a save_pretrained folder
    parser_run: str | None = None  # torch face parser: a `skin train-parser` run directory
    state_path: str | None = None
    num_classes: int = 7
    input_name: str = "input"
    output_path: str | None = None  # where to save the first output for agreement checks


def _percentiles(times: list[float]) -> dict:
    ms = np.array(times) * 1e3
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "mean_ms": float(statistics.fmean(ms)),
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not ru_maxrss: the latter keeps the parent's peak across the
    fork and exec that started this worker."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # no /proc: kilobytes on Linux and BSDs


def run_job(job: Job) -> dict:
    """Runs inside the spawned process."""
    batch = np.load(job.batch_path)
    if job.engine == "torch":
        import torch

        torch.set_num_threads(job.threads)
        if job.segformer_dir:
            from ..export.parser import load_segformer

            model, _ = load_segformer(local=Path(job.segformer_dir))

            def call(x):
                return model(pixel_values=x).logits
        elif job.parser_run:
            from ..export.parser import load_run_parser

            call = load_run_parser(Path(job.parser_run))[0]
        else:
            import timm

            model = timm.create_model(job.timm_model, num_classes=job.num_classes).eval()
            if job.state_path:
                from safetensors.torch import load_file

                model.load_state_dict(load_file(job.state_path))
            call = model
        x = torch.from_numpy(batch)
        times = []
        with torch.inference_mode():
            for i in range(job.warmup + job.rounds):
                start = time.perf_counter()
                out = call(x)
                if i >= job.warmup:
                    times.append(time.perf_counter() - start)
        first = out.numpy()
    else:
        from ..runtime.session import create_session

        sess = create_session(Path(job.onnx_path), "cpu", job.threads)
        feed = {job.input_name: batch}
        times = []
        for i in range(job.warmup + job.rounds):
            start = time.perf_counter()
            out = sess.run(None, feed)
            if i >= job.warmup:
                times.append(time.perf_counter() - start)
        first = out[0]
    if job.output_path:
        np.save(job.output_path, first)
    result = _percentiles(times)
    result["images_per_s"] = len(batch) / (result["p50_ms"] / 1e3)
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def measure(job: Job) -> dict:
    """Run ``job`` in a fresh process and return its figures."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(run_job, job).result()


def file_mb(path: str | Path | None) -> float | None:
    return round(Path(path).stat().st_size / 1e6, 2) if path else None
