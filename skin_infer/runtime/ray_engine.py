"""`skin-infer --engine ray`: the same analysis as a Ray Data pipeline, for archives of millions of photos.

Ray Data lists and reads the inputs (local folders, files, or any URI pyarrow.fs understands: s3://, gs://,
file://) in parallel, lazily; a pool of actors, each holding one ``Analyzer`` (models loaded once per actor,
``threads`` intra-op threads each, so actors x threads = cores), turns bytes into result rows; bad images
become error rows exactly as locally; a worker that dies is restarted and its batch retried by Ray, and the
output is written once per block, so every image appears exactly once. Parquet output is a dataset of part
files, one row per region with the CSV's columns (typed) and the full per-image JSON in ``result_json``.
``--resume`` reads the files already in the output dataset and skips them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .images import IMAGE_SUFFIXES, UNSUPPORTED_SUFFIXES, decode_image
from .results import TEXT_COLUMNS, ImageResult, csv_columns
from .runner import BatchSummary


class AnalyzerActor:
    """One Ray actor: an Analyzer built once, applied to batches of (path, bytes)."""

    def __init__(self, options: dict[str, Any], max_pixels: int):
        from .analyzer import Analyzer

        self.analyzer = Analyzer(**options, max_pixels=max_pixels)
        self.max_pixels = max_pixels
        self.columns = csv_columns(self.analyzer.heads)

    def analyse(self, path: str, data: bytes) -> ImageResult:
        suffix = Path(path).suffix.lower()
        if suffix in UNSUPPORTED_SUFFIXES:
            return ImageResult.failed(path, f"{path}: {suffix} files are not supported; convert it to JPEG or PNG")
        try:
            image = decode_image(data, self.max_pixels)
        except Exception as exc:  # an ImageError, as the local engine words it
            return ImageResult.failed(path, f"{path}: {exc}")
        return self.analyzer.analyze_decoded(image, path)

    def __call__(self, batch: dict):
        import pyarrow as pa

        rows = []
        for path, data in zip(batch["path"], batch["bytes"], strict=True):
            result = self.analyse(str(path), bytes(data))
            record = result.to_dict()
            record.pop("timings_ms", None)
            text = json.dumps(record, ensure_ascii=False, allow_nan=False)
            for row in result.csv_rows():
                rows.append({**{c: row.get(c) for c in self.columns}, "result_json": text})
        columns = [*self.columns, "result_json"]
        # an explicit schema: a column that is empty in one batch (no ITA note there) must not be typed "null"
        schema = pa.schema([(c, _arrow_type(c)) for c in columns])
        return pa.table({c: [_typed(c, r[c]) for r in rows] for c in columns}, schema=schema)


def _is_text(column: str) -> bool:
    return column in TEXT_COLUMNS or column.endswith("_label") or column == "result_json"


def _arrow_type(column: str):
    import pyarrow as pa

    return pa.string() if _is_text(column) else pa.bool_() if column == "face_found" else pa.float64()


def _typed(column: str, value):
    """Parquet wants one type per column: numbers as floats (None when empty), text as strings."""
    if _is_text(column):
        return None if value in (None, "") else str(value)
    if column == "face_found":
        return bool(value)
    return None if value in (None, "") else float(value)


def heads_of(options: dict[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    """The heads the actors' models answer, read from the bundles' manifests (no model loaded here)."""
    from .bundle import load_bundle
    from .defaults import default_classifiers

    model = options.get("model", "default")
    bundles = []
    for entry in model if isinstance(model, (list, tuple)) else [model]:
        if entry is not None and str(entry).lower() != "none":
            bundles += default_classifiers() if str(entry).lower() == "default" else [Path(entry)]
    return [
        (h["name"], tuple(str(v) for v in h["labels"]))
        for b in bundles
        for h in load_bundle(b, kind="classifier", verify=False).manifest["heads"]
    ]


@dataclass
class RayRun:
    paths: list[str]
    out: Path
    options: dict[str, Any]  # Analyzer options (model, parser, parser_model, device, explain, min_skin, top_k)
    address: str | None = None
    workers: int = 1
    threads: int = 1
    batch_size: int = 16
    max_pixels: int = 64_000_000
    resume: bool = False


def _done_files(out: Path) -> set[str]:
    """Every image already in the output dataset. Failed ones too: Parquet parts are only ever added, so a
    retried failure would be a second row; to retry failures, write them to a new dataset."""
    import pyarrow.dataset as pads

    if not out.exists():
        return set()
    return set(pads.dataset(str(out), format="parquet").to_table(columns=["file"])["file"].to_pylist())


def run_ray(run: RayRun, log=print) -> BatchSummary:
    import ray

    started = not ray.is_initialized()
    if started:  # no address: a local Ray on this machine (a laptop user trying it); else join the cluster
        ray.init(address=run.address, include_dashboard=False, log_to_driver=False)
    try:
        return _run(run, log)
    finally:
        if started:
            ray.shutdown()


def _run(run: RayRun, log) -> BatchSummary:
    import ray.data

    suffixes = sorted(s.lstrip(".") for s in IMAGE_SUFFIXES | UNSUPPORTED_SUFFIXES)
    suffixes += [s.upper() for s in suffixes]
    # Reading is I/O: it asks for no CPU, so the analysing actors can hold every core without starving it.
    ds = ray.data.read_binary_files(
        run.paths, include_paths=True, file_extensions=suffixes, ray_remote_args={"num_cpus": 0}
    )
    done = _done_files(run.out) if run.resume and run.out.suffix.lower() == ".parquet" else set()
    if done:
        ds = ds.filter(lambda row: row["path"] not in done, num_cpus=0)
        log(f"resuming: {len(done)} image(s) already in {run.out} are skipped")
    options = {**run.options, "threads": run.threads}
    results = ds.map_batches(
        AnalyzerActor,
        fn_constructor_kwargs={"options": options, "max_pixels": run.max_pixels},
        batch_size=run.batch_size,
        concurrency=run.workers,
        num_cpus=run.threads,
        max_restarts=-1,  # a dead worker is replaced ...
        max_task_retries=-1,  # ... and its batch run again
    )
    start = time.perf_counter()
    summary = BatchSummary()
    suffix = run.out.suffix.lower()
    if suffix == ".parquet":
        staging = run.out.with_name(f".{run.out.name}.partial-{int(time.time())}")
        results.write_parquet(str(staging))
        run.out.mkdir(parents=True, exist_ok=True)
        for part in Path(staging).glob("*.parquet"):  # add the new parts beside the ones a resume kept
            part.replace(run.out / part.name)
        Path(staging).rmdir()
        import pyarrow.dataset as pads

        written = pads.dataset(str(run.out), format="parquet").to_table(columns=["file", "status", "face_index"])
        files = written["file"].to_pylist()
        statuses = dict(zip(files, written["status"].to_pylist(), strict=True))
        summary.images = len(statuses)
        summary.failed = sum(s != "ok" for s in statuses.values())
        summary.faces = len(
            {(f, i) for f, i in zip(files, written["face_index"].to_pylist(), strict=True) if i is not None}
        )
    else:  # .jsonl / .csv for small runs: the records come back to this process and go through the local writer
        from .writers import ResultWriter

        writer = ResultWriter(run.out, heads_of(options), run.resume)
        seen: set[str] = set()  # an image's region rows may span two batches
        try:
            for batch in results.iter_batches(batch_size=256, batch_format="pandas"):
                for file, text in zip(batch["file"], batch["result_json"], strict=True):
                    if file in seen:
                        continue
                    seen.add(file)
                    result = ImageResult.from_dict(json.loads(text))
                    writer.write(result)
                    summary.images += 1
                    summary.failed += not result.ok
                    summary.faces += len(result.faces)
        finally:
            writer.close()
    summary.seconds = time.perf_counter() - start
    return summary
