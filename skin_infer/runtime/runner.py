"""A batch run: the stream of ``ImageResult``s an engine produces (``Analyzer.stream`` locally, ``ray_engine``
on a cluster) into a writer and overlay folder, with one summary and exit code for every engine.

The CLI, and any caller with a list of files, calls ``run_batch``; progress is reported through a callback,
so the runtime draws nothing itself. Ctrl-C ends the run cleanly: the writer is closed (its file is valid
and holds every image done) and the summary says the run was interrupted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .files import atomic_write
from .results import ImageResult
from .writers import ResultWriter


def overlay_name(file: str, flat: bool, suffix: str = ".overlay.jpg") -> str:
    """The overlay's file name: the photo's name, or its whole path flattened when folders may repeat names."""
    name = Path(file).name if flat else file.replace("/", "__").replace("\\", "__").lstrip("._")
    return name + suffix


def save_label_map(result: ImageResult, path: Path) -> Path:
    """The parse as a PNG of label ids at the image's size (what --save-masks writes)."""
    import cv2

    ok, encoded = cv2.imencode(".png", result.label_map())
    if not ok:
        raise OSError(f"{path}: the label map could not be encoded")
    return atomic_write(path, encoded.tobytes())


@dataclass
class BatchSummary:
    images: int = 0
    failed: int = 0
    faces: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    kept: list[ImageResult] = field(default_factory=list)  # the results the caller asked to keep

    def add(self, result: ImageResult) -> None:
        self.images += 1
        self.failed += not result.ok
        self.faces += len(result.faces)

    @property
    def exit_code(self) -> int:
        """130 after Ctrl-C, 1 when any image failed, else 0 (the CLI's exit code)."""
        return 130 if self.interrupted else 1 if self.failed else 0

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        if self.images and self.failed == self.images:  # no rate for work that did not happen
            return f"{'interrupted: ' if self.interrupted else ''}{self.failed} image(s) failed, none analysed"
        return (
            f"{'interrupted: ' if self.interrupted else ''}{self.images - self.failed} image(s) analysed, "
            f"{self.failed} failed, {self.faces} face(s), {self.seconds:.2f} s ({self.images_per_s:.1f} img/s)"
        )


def run_batch(
    results: Iterable[ImageResult],
    writer: ResultWriter | None = None,
    overlays: Path | None = None,
    masks: Path | None = None,
    flat_names: bool = True,
    keep: Callable[[int, ImageResult], bool] = lambda index, result: False,
    on_result: Callable[[ImageResult], None] | None = None,
) -> BatchSummary:
    """Take each result of an engine's stream: write it, save overlays (and parse label maps) of successes (they
    need the decoded image: local engine only), call ``on_result``.

    ``keep(index, result)`` says which results to hold in the summary (all of them for JSON on stdout, the
    first for a one-photo table); the rest are dropped as soon as they are written.
    """
    summary = BatchSummary()
    start = time.perf_counter()
    try:
        for result in results:
            try:
                named = result.file if result.frame is None else f"{result.file}.frame{result.frame:06d}"
                if result.ok and overlays is not None:
                    result.save_overlay(overlays / overlay_name(named, flat_names))
                if result.ok and masks is not None:
                    save_label_map(result, masks / overlay_name(named, flat_names, ".mask.png"))
            except OSError as exc:
                result = ImageResult.failed(result.file, f"{result.file}: overlay or mask not written ({exc})")
            if writer:
                try:
                    writer.write(result)
                except ValueError as exc:  # a value strict JSON cannot hold: that image fails, the run goes on
                    result = ImageResult.failed(result.file, f"{result.file}: result not writable ({exc})")
                    writer.write(result)
            if keep(summary.images, result):
                summary.kept.append(result)
            summary.add(result)
            if on_result:
                on_result(result)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        if writer:
            writer.close()
        summary.seconds = time.perf_counter() - start
    return summary
