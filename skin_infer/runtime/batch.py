"""Many files through one Analyzer, decoding the next images in background threads while one is analysed.

OpenCV's decoders release the GIL, so decoding overlaps inference; a bad file becomes an error result
and the run goes on.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from .errors import ImageError
from .images import DEFAULT_MAX_PIXELS, read_image
from .pipeline import Analysis, Analyzer, error_result

PREFETCH = 4  # images decoded ahead of the one being analysed


def _load(path: str, max_pixels: int):
    start = time.perf_counter()
    try:
        return read_image(path, max_pixels), (time.perf_counter() - start) * 1e3
    except ImageError as exc:
        return exc, 0.0


def analyze_files(
    files: Iterable[str], analyzer: Analyzer, max_pixels: int = DEFAULT_MAX_PIXELS, prefetch: int = PREFETCH
) -> Iterator[Analysis]:
    """One Analysis per file, in order; failed files give ``status == "error"`` results."""
    files = iter(files)
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = deque()
        for path in files:
            pending.append((path, pool.submit(_load, path, max_pixels)))
            if len(pending) > prefetch:
                break
        while pending:
            path, future = pending.popleft()
            nxt = next(files, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(_load, nxt, max_pixels)))
            image, decode_ms = future.result()
            if isinstance(image, Exception):
                yield Analysis(error_result(path, str(image)))
            else:
                yield analyzer.analyze(image, path, decode_ms)
