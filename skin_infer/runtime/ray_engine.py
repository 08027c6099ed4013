"""`skin-infer --engine ray`: the same analysis on a Ray Data pipeline, for archives of millions of photos.

The inputs are found by the same code as the local engine's (``files.collect_inputs``: folders, symlink loops,
unsupported files); URIs pyarrow.fs understands (s3://, gs://, file://) are listed and read by Ray Data. A pool
of actors, each holding one ``Analyzer`` built from the run's ``AnalysisOptions`` (models loaded once per actor,
``threads`` intra-op threads each, so actors x threads = cores), analyses batches with ``Analyzer.stream`` for
local files (the local engine's own decoding and error results) and ``images.decode_named`` for URI bytes.
``results()`` yields the ``ImageResult``s back in the driver, where ``runner.run_batch`` hands them to the same
writers as the local engine (``.parquet`` included), with the same resume. A worker that dies is restarted and
its batch retried by Ray; an image whose result already came back is never written twice.

Workers get the bundle folders the driver resolved (absolute paths), so they never resolve "default"
themselves: a worker that imports a source checkout instead of the installed package still runs the models.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

from .defaults import resolve_models
from .images import IMAGE_SUFFIXES, UNSUPPORTED_SUFFIXES
from .options import AnalysisOptions
from .results import ImageResult


class AnalyzerActor:
    """One Ray actor: an Analyzer built once, applied to batches of paths (and bytes, for URIs)."""

    def __init__(self, options: dict):
        from .analyzer import Analyzer

        self.analyzer = Analyzer(AnalysisOptions(**options))

    def _results(self, batch: dict) -> Iterator[ImageResult]:
        if "bytes" not in batch:  # local files: read and decoded as the local engine does
            yield from self.analyzer.stream([str(p) for p in batch["path"]])
            return
        from .images import decode_named

        for path, data in zip(batch["path"], batch["bytes"], strict=True):
            try:
                image = decode_named(bytes(data), str(path), self.analyzer.max_pixels)
            except Exception as exc:  # an ImageError, worded as the local engine words it
                yield ImageResult.failed(str(path), str(exc))
                continue
            yield self.analyzer.analyze_decoded(image, str(path))

    def __call__(self, batch: dict) -> dict:
        files, records = [], []
        for result in self._results(batch):
            record = result.to_dict()
            record.pop("timings_ms", None)  # per-worker timings mean nothing once results are merged
            files.append(result.file)
            records.append(json.dumps(record, ensure_ascii=False, allow_nan=False))
        return {"file": files, "result_json": records}


@dataclass
class RayEngine:
    options: AnalysisOptions
    address: str | None = None
    workers: int = 1
    batch_size: int = 16

    def __post_init__(self) -> None:
        threads = self.options.threads or max(1, (os.cpu_count() or 2) // self.workers)  # actors x threads = cores
        models = tuple(str(b) for b in resolve_models(self.options.model)) or ("none",)
        self.options = self.options.replace(model=models, threads=threads)

    def results(self, files: list[str], done: set[str] = frozenset()) -> Iterator[ImageResult]:
        """One result per input not in ``done`` (same-file keys), in the order Ray finishes them."""
        import ray

        started = not ray.is_initialized()
        if started:  # no address: a local Ray on this machine (a laptop user trying it); else join the cluster
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        try:
            yield from self._run(files, done)
        finally:
            if started:
                ray.shutdown()

    def _run(self, files: list[str], done: set[str]) -> Iterator[ImageResult]:
        import ray.data

        from .writers import same_file_key

        local = [f for f in files if "://" not in f and same_file_key(f) not in done]
        uris = [f for f in files if "://" in f]
        parts = []
        if local:
            parts.append(ray.data.from_items([{"path": os.path.abspath(f)} for f in local]))
        if uris:
            suffixes = sorted(s.lstrip(".") for s in IMAGE_SUFFIXES | UNSUPPORTED_SUFFIXES)
            # Reading is I/O: it asks for no CPU, so the analysing actors can hold every core without starving it.
            suffixes += [s.upper() for s in suffixes]
            read = ray.data.read_binary_files(
                uris, include_paths=True, file_extensions=suffixes, ray_remote_args={"num_cpus": 0}
            )
            parts.append(read.filter(lambda row: row["path"] not in done, num_cpus=0))
        if not parts:
            return
        ds = parts[0] if len(parts) == 1 else parts[0].union(*parts[1:])
        analysed = ds.map_batches(
            AnalyzerActor,
            fn_constructor_kwargs={"options": self.options.to_dict()},
            batch_size=self.batch_size,
            concurrency=self.workers,
            num_cpus=self.options.threads,
            max_restarts=-1,  # a dead worker is replaced ...
            max_task_retries=-1,  # ... and its batch run again
        )
        seen: set[str] = set()  # a retried batch may bring an image back twice
        for batch in analysed.iter_batches(batch_size=64, batch_format="numpy"):
            for file, text in zip(batch["file"], batch["result_json"], strict=True):
                if file not in seen:
                    seen.add(file)
                    yield ImageResult.from_dict(json.loads(text))
