"""What `skin bench` measures: classifiers (timm), SegFormer face parsers and the wrinkle detector's architecture
in PyTorch and ONNX Runtime, the shipped default bundles, and the runtime pipeline on real photos. Torch rows
need torch; without it they are skipped and the reason is recorded.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..runtime.bundle import load_bundle
from ..runtime.images import IMAGE_SUFFIXES, read_image
from ..runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD, InputSpec, preprocess
from ..versions import package_versions
from .segformer_shapes import make_parser_run, make_segformer
from .workers import Job, file_mb, measure, measure_paired

IMAGENET_SPEC = InputSpec.timm_eval(224, IMAGENET_MEAN, IMAGENET_STD)


@dataclass
class Plan:
    threads: int = 2
    rounds: int = 30
    warmup: int = 5
    classifiers: list[str] = field(default_factory=lambda: ["efficientnet_b0", "mobilenetv3_large_100", "resnet50"])
    batches: list[int] = field(default_factory=lambda: [1, 16])
    parsers: list[tuple[str, list[int]]] = field(
        default_factory=lambda: [("mnv2-mlp", [256]), ("mit-b5", [512, 384, 256]), ("mit-b0", [512])]
    )
    parser_rounds: int = 5
    int8: bool = True

    @classmethod
    def quick(cls, threads: int = 2) -> Plan:
        return cls(
            threads=threads,
            rounds=15,
            warmup=3,
            classifiers=["mobilenetv3_large_100", "efficientnet_b0"],
            batches=[1],
            parsers=[("mnv2-mlp", [256]), ("mit-b0", [256])],
            parser_rounds=5,
            int8=False,
        )


def torch_available() -> bool:
    try:
        import timm  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def system_info(threads: int) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = package_versions()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": threads,
        "python": platform.python_version(),
        "versions": versions,
    }


def sample_images(shared: Path | None, n: int) -> list[np.ndarray]:
    """Real images: HAM10000 and face photos from shared data when there, else scikit-image's samples."""
    paths: list[Path] = []
    if shared is not None:
        for folder in (shared / "data" / "ham10000" / "mel", shared / "data" / "faces" / "photos"):
            if folder.is_dir():
                paths += sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:n]
    if paths:
        return [read_image(p) for p in paths[:n]]
    try:
        from skimage import data
    except ImportError:
        rng = np.random.default_rng(0)
        return [rng.integers(0, 255, (256, 256, 3), np.uint8) for _ in range(n)]
    samples = [data.astronaut(), data.chelsea(), data.coffee()]
    return [np.ascontiguousarray(samples[i % 3][:, :, ::-1]) for i in range(n)]


def _row(model: str, task: str, engine: str, precision: str, batch: int, size: int, figures: dict, **extra) -> dict:
    return {
        "model": model,
        "task": task,
        "engine": engine,
        "precision": precision,
        "batch": batch,
        "input": size,
        **figures,
        **extra,
    }


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a.argmax(1) == b.argmax(1)).mean())


def classifier_rows(plan: Plan, tmp: Path, images: list[np.ndarray], log) -> list[dict]:
    import timm
    import torch
    from safetensors.torch import save_file

    from ..export.classifier import ClassifierGraph
    from ..export.torch_onnx import graph_to_onnx

    rows = []
    for arch in plan.classifiers:
        log(f"classifier {arch}: export")
        work = tmp / arch
        work.mkdir()
        torch.manual_seed(0)
        model = timm.create_model(arch, num_classes=7).eval()
        state = work / "weights.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(state))
        fp32, slim, _ = graph_to_onnx(ClassifierGraph(model, False), 224, work, ["logits"], what=arch)
        engines = [("onnxruntime", "fp32", fp32)]
        if plan.int8:
            from ..export.quantize import prepare_for_int8, static_int8

            calib = [preprocess(images[i : i + 8], IMAGENET_SPEC) for i in range(0, min(len(images), 32), 8)]
            int8 = static_int8(prepare_for_int8(slim, work / "prepared.onnx"), work / "qdq.onnx", calib)
            engines.append(("onnxruntime", "int8", int8))
        for batch in plan.batches:
            x = preprocess([images[i % len(images)] for i in range(batch)], IMAGENET_SPEC)
            np.save(work / f"x{batch}.npy", x)
            log(f"classifier {arch}: torch and {', '.join(p for _, p, _ in engines)}, batch {batch}, interleaved")
            ref = work / f"torch{batch}.npy"
            torch_job = Job("torch", str(work / f"x{batch}.npy"), plan.threads, plan.rounds, plan.warmup,
                            timm_model=arch, state_path=str(state), output_path=str(ref))  # fmt: skip
            jobs = [
                Job(engine, str(work / f"x{batch}.npy"), plan.threads, plan.rounds, plan.warmup,
                    onnx_path=str(path), output_path=str(work / f"{precision}{batch}.npy"))
                for engine, precision, path in engines
            ]  # fmt: skip
            figures, speedups = measure_paired([torch_job, *jobs])
            rows.append(_row(arch, "classifier", "torch", "fp32", batch, 224, figures[0], size_mb=file_mb(state),
                             agreement=1.0, speedup_vs_torch=1.0))  # fmt: skip
            for (engine, precision, path), job, got, speedup in zip(engines, jobs, figures[1:], speedups[1:],
                                                                   strict=True):  # fmt: skip
                rows.append(
                    _row(arch, "classifier", engine, precision, batch, 224, got, size_mb=file_mb(path),
                         agreement=_agreement(np.load(ref), np.load(job.output_path)), speedup_vs_torch=speedup)
                )  # fmt: skip
    return rows


def parser_rows(plan: Plan, tmp: Path, images: list[np.ndarray], photos: Path | None, log) -> list[dict]:
    from ..export.parser import export_parser

    rows = []
    for name, sizes in plan.parsers:
        work = tmp / name
        work.mkdir()
        # the shipped parser's architecture (a run with random weights) or a published SegFormer shape
        source = {"run": make_parser_run(work / "run", name)} if name == "mnv2-mlp" else {"local": work / "hf"}
        if "local" in source:
            make_segformer(work / "hf", name)
        full_labels = None
        for size in sizes:
            log(f"parser {name}@{size}: export")
            spec = InputSpec.stretched(size)
            x_path = work / f"x{size}.npy"
            np.save(x_path, preprocess(images[:1], spec))
            precisions = ["fp32"] + (["int8"] if plan.int8 else [])
            bundles = {p: work / f"{p}{size}" for p in precisions}
            for precision, bundle in bundles.items():
                if precision == "fp32" or "local" in source:  # a run's int8 is gated on its data: not here
                    export_parser(bundle, **source, size=size, precision=precision, images=photos)
            log(f"parser {name}@{size}: torch and onnxruntime, interleaved")
            ref = work / f"torch{size}.npy"
            torch_job = Job(
                "torch",
                str(x_path),
                plan.threads,
                plan.parser_rounds,
                1,
                segformer_dir=str(work / "hf") if "local" in source else None,
                parser_run=str(source["run"]) if "run" in source else None,
                output_path=str(ref),
            )
            exported = {p: b for p, b in bundles.items() if (b / "model.onnx").is_file()}
            jobs = [
                Job("onnxruntime", str(x_path), plan.threads, plan.parser_rounds, 1, onnx_path=str(b / "model.onnx"),
                    input_name="pixel_values", output_path=str(work / f"{p}{size}.npy"))
                for p, b in exported.items()
            ]  # fmt: skip
            figures, speedups = measure_paired([torch_job, *jobs])
            labels = np.load(ref).argmax(1)[0].astype(np.uint8)
            if full_labels is None:
                full_labels = labels
            import cv2

            vs_full = float(
                (cv2.resize(labels, full_labels.shape[::-1], interpolation=cv2.INTER_NEAREST) == full_labels).mean()
            )
            shown = name if "run" in source else f"segformer-{name}"
            rows.append(_row(shown, "face-parser", "torch", "fp32", 1, size, figures[0], size_mb=None, agreement=1.0,
                             agreement_vs_largest=vs_full, speedup_vs_torch=1.0))  # fmt: skip
            for (precision, bundle), job, got, speedup in zip(exported.items(), jobs, figures[1:], speedups[1:],
                                                              strict=True):  # fmt: skip
                agreement = float((np.load(job.output_path).argmax(1)[0] == labels).mean())
                rows.append(_row(shown, "face-parser", "onnxruntime", precision, 1, size, got,
                                 size_mb=file_mb(bundle / "model.onnx"), agreement=agreement,
                                 agreement_vs_largest=vs_full, speedup_vs_torch=speedup))  # fmt: skip
    return rows


def detector_rows(plan: Plan, tmp: Path, bundles: list[Path], images: list[np.ndarray], log) -> list[dict]:
    """The shipped wrinkle detector's architecture (random weights) in torch and ONNX Runtime, and the shipped
    bundle's own graph (its precision), on one face-sized crop, interleaved."""
    import torch
    from safetensors.torch import save_file

    from ..export.torch_onnx import graph_to_onnx
    from ..train.detection import CenterNet, DetectorGraph

    shipped = next((load_bundle(b) for b in bundles if load_bundle(b, verify=False).kind == "detector"), None)
    if shipped is None:
        return []
    manifest, spec = shipped.manifest, shipped.input_spec
    size, name = spec.size[0], manifest["name"]
    log(f"detector {name}: export of its architecture")
    work = tmp / "detector"
    work.mkdir()
    torch.manual_seed(0)
    model = CenterNet(len(manifest["classes"]), manifest["decoder_dim"]).eval()
    state = work / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(state))
    fp32, slim, _ = graph_to_onnx(DetectorGraph(model, size), size, work, ["scores", "boxes"], what="detector")
    engines = [("onnxruntime", "fp32", fp32)]
    if plan.int8:
        from ..export.quantize import prepare_for_int8, static_int8

        calib = [preprocess(images[i : i + 8], spec) for i in range(0, min(len(images), 32), 8)]
        engines.append(("onnxruntime", "int8", static_int8(prepare_for_int8(slim, work / "p.onnx"), work / "q.onnx",
                                                            calib)))  # fmt: skip
    engines.append(("onnxruntime", f"{manifest['precision']} (shipped)", shipped.path / "model.onnx"))
    x_path = work / "x.npy"
    np.save(x_path, preprocess(images[:1], spec))
    log(f"detector {name}: torch and {', '.join(p for _, p, _ in engines)}, interleaved")
    ref = work / "torch.npy"
    torch_job = Job("torch", str(x_path), plan.threads, plan.rounds, plan.warmup, detector_state=str(state),
                    output_path=str(ref))  # fmt: skip
    jobs = [Job(e, str(x_path), plan.threads, plan.rounds, plan.warmup, onnx_path=str(p),
                output_path=str(work / f"out{i}.npy")) for i, (e, _, p) in enumerate(engines)]  # fmt: skip
    figures, speedups = measure_paired([torch_job, *jobs])
    rows = [_row(name, "detector", "torch", "fp32", 1, size, figures[0], size_mb=file_mb(state), speedup_vs_torch=1.0)]
    for (engine, precision, path), job, got, speedup in zip(engines, jobs, figures[1:], speedups[1:], strict=True):
        same = "shipped" not in precision  # the shipped graph has trained weights: no agreement with random ones
        diff = float(np.abs(np.load(ref) - np.load(job.output_path)).max()) if same else None
        rows.append(_row(name, "detector", engine, precision, 1, size, got, size_mb=file_mb(path),
                         max_abs_score_diff=diff, speedup_vs_torch=speedup))  # fmt: skip
    return rows


def bundle_rows(plan: Plan, bundle: Path, images: list[np.ndarray], tmp: Path, log) -> list[dict]:
    """The shipped default classifier: ONNX Runtime only (its torch weights are not shipped)."""
    loaded = load_bundle(bundle)
    manifest = loaded.manifest
    log(f"default model {manifest['name']}: onnxruntime")
    rows = []
    for batch in plan.batches:
        x_path = tmp / f"default{batch}.npy"
        np.save(x_path, preprocess([images[i % len(images)] for i in range(batch)], loaded.input_spec))
        figures = measure(
            Job(
                "onnxruntime", str(x_path), plan.threads, plan.rounds, plan.warmup, onnx_path=str(bundle / "model.onnx")
            )
        )
        test = manifest.get("metrics", {}).get("test", {})
        rows.append(
            _row(
                manifest["name"],
                "classifier (default)",
                "onnxruntime",
                manifest["precision"],
                batch,
                loaded.input_spec.size[0],
                figures,
                size_mb=file_mb(bundle / "model.onnx"),
                balanced_accuracy=test.get("balanced_accuracy"),
                speedup_vs_torch=None,
            )
        )
    return rows


def pipeline_rows(plan: Plan, shared: Path | None, log) -> list[dict]:
    """The runtime on real photos: median time per stage, and the cold start of the `skin-infer` process."""
    from ..runtime import HaarDetector, Pipeline, YuNetDetector
    from ..runtime.downloads import cached_path

    folder = shared / "data" / "faces" / "photos" if shared else None
    if folder is None or not folder.is_dir():
        return []
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    yunet = shared / "weights" / "yunet" / "yunet_s_640_640.onnx"
    finders = [HaarDetector()]
    if yunet.is_file() or cached_path("yunet"):
        finders.append(YuNetDetector(yunet if yunet.is_file() else cached_path("yunet"), "cpu", plan.threads))
    rows = []
    for finder in finders:
        log(f"pipeline: {finder.name}")
        pipeline = Pipeline(finder)
        stages: dict[str, list[float]] = {}
        totals = []
        for _ in range(3):
            for photo in photos:
                start = time.perf_counter()
                image = read_image(photo)
                decode = (time.perf_counter() - start) * 1e3
                result = pipeline.analyze(image, str(photo), decode)
                totals.append((time.perf_counter() - start) * 1e3)
                for stage, ms in result.timings_ms.items():
                    stages.setdefault(stage, []).append(ms)
        figures = {
            "p50_ms": float(np.median(totals)),
            "p90_ms": float(np.percentile(totals, 90)),
            "images_per_s": 1e3 / float(np.median(totals)),
        }
        rows.append(
            _row(
                f"pipeline ({finder.name})",
                "pipeline",
                "onnxruntime" if finder.name == "yunet" else "opencv",
                "-",
                1,
                0,
                figures,
                stages_p50_ms={k: float(np.median(v)) for k, v in stages.items()},
                speedup_vs_torch=None,
            )
        )
    exe = Path(sys.executable).parent / "skin-infer"
    if exe.exists():
        # the shipped defaults, as a user types it; the first run also fills the optimised-graph cache
        cmd = [str(exe), str(photos[0]), "-q", "--threads", str(plan.threads)]
        subprocess.run(cmd, capture_output=True)
        walls = []
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            walls.append(time.perf_counter() - start)
        rows.append(
            _row(
                "skin-infer cold start",
                "pipeline",
                "process",
                "-",
                1,
                0,
                {"p50_ms": float(np.median(walls) * 1e3), "p90_ms": float(np.percentile(walls, 90) * 1e3)},
                speedup_vs_torch=None,
            )
        )
    return rows


def run(plan: Plan, shared: Path | None, default_bundles: list[Path], log=print) -> tuple[list[dict], list[str]]:
    """All rows and the notes (what was skipped and why)."""
    notes: list[str] = []
    images = sample_images(shared, 32)
    photos = (
        shared / "data" / "faces" / "photos" if shared and (shared / "data" / "faces" / "photos").is_dir() else None
    )
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="skin-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        if torch_available():
            rows += classifier_rows(plan, tmp, images, log)
            if photos is None:
                notes.append("face-parser rows skipped: their export verification needs photos (shared data)")
            else:
                rows += parser_rows(plan, tmp, images, photos, log)
            rows += detector_rows(plan, tmp, default_bundles, images, log)
        else:
            notes.append("torch rows skipped: torch is not installed (pip install 'skin-infer[bench]')")
        for bundle in default_bundles:
            if load_bundle(bundle, verify=False).kind == "classifier":
                rows += bundle_rows(plan, bundle, images, tmp, log)
        rows += pipeline_rows(plan, shared, log)
    system = system_info(plan.threads)
    for row in rows:
        row["threads"] = plan.threads
        row["system"] = system
    return rows, notes
