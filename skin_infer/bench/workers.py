"""Benchmark rows, each engine in a fresh (spawned) process: latency percentiles, throughput, peak memory.

Every engine gets the same intra-op thread count, a warm-up and the median of many runs; torch runs under
``inference_mode``. Engines compared with each other are measured interleaved (``measure_paired``): all loaded
at once, called in turn round by round, and the speed-up is the median of the per-round ratios, so a busy
machine slows both sides of each ratio alike (timing each engine in its own block let load land on one side).
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
    detector_state: str | None = None  # torch box detector: CenterNet weights (safetensors) of the shipped shape
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


def _prepare(job: Job):
    """A function running one inference of ``job`` and returning its first output as a numpy array."""
    batch = np.load(job.batch_path)
    if job.engine != "torch":
        from ..runtime.session import create_session

        # one model called in a loop: ONNX Runtime's own default, spinning threads (the analysis turns it off)
        sess = create_session(Path(job.onnx_path), "cpu", job.threads, cache=False, spinning=True)
        feed = {job.input_name: batch}
        return lambda: sess.run(None, feed)[0]
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
    elif job.detector_state:
        from safetensors.torch import load_file

        from ..train.detection import CenterNet, DetectorGraph

        state = load_file(job.detector_state)
        model = CenterNet(state["heat.2.weight"].shape[0], state["heat.0.weight"].shape[0])
        model.load_state_dict(state)
        graph = DetectorGraph(model.eval(), batch.shape[-1]).eval()

        def call(x):
            return graph(x)[0]
    else:
        import timm

        model = timm.create_model(job.timm_model, num_classes=job.num_classes).eval()
        if job.state_path:
            from safetensors.torch import load_file

            model.load_state_dict(load_file(job.state_path))
        call = model
    x = torch.from_numpy(batch)

    def run():
        with torch.inference_mode():
            return call(x).numpy()

    return run


def _worker(job: Job, conn) -> None:
    """Runs inside a spawned process: load, warm up, then one timed call per "run" message until "stop"."""
    call = _prepare(job)
    out = None
    for _ in range(job.warmup):
        out = call()
    conn.send("ready")
    times = []
    while conn.recv() == "run":
        start = time.perf_counter()
        out = call()
        times.append(time.perf_counter() - start)
        conn.send(times[-1])
    if job.output_path:
        np.save(job.output_path, out)
    result = _percentiles(times)
    result["round_ms"] = [round(t * 1e3, 4) for t in times]  # in call order: the rounds the speed-up pairs
    result["images_per_s"] = len(np.load(job.batch_path, mmap_mode="r")) / (result["p50_ms"] / 1e3)
    result["peak_rss_mb"] = peak_rss_mb()
    conn.send(result)


def measure_paired(jobs: list[Job]) -> tuple[list[dict], list[float]]:
    """Each job in a fresh process of its own, all loaded at once and called in turn, round by round (the order
    rotating), so whatever else loads the machine moves every engine alike. Returns each job's figures and, per
    job, the median over rounds of the first job's time divided by its own (the paired speed-up)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    links, procs = [], []
    try:
        for job in jobs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(job, child), daemon=True)
            proc.start()
            links.append(parent)
            procs.append(proc)
        for link in links:
            if link.recv() != "ready":
                raise RuntimeError("a benchmark worker did not start")
        for r in range(jobs[0].rounds):
            for k in range(len(jobs)):
                i = (k + r) % len(jobs)
                links[i].send("run")
                links[i].recv()
        figures = []
        for link in links:
            link.send("stop")
            figures.append(link.recv())
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    base = np.array(figures[0]["round_ms"])
    return figures, [float(np.median(base / np.array(f["round_ms"]))) for f in figures]


def measure(job: Job) -> dict:
    """Run ``job`` in a fresh process and return its figures."""
    return measure_paired([job])[0][0]


def file_mb(path: str | Path | None) -> float | None:
    return round(Path(path).stat().st_size / 1e6, 2) if path else None
