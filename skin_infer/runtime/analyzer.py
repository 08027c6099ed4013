"""The Python API: ``analyze(source)`` for one image, ``Analyzer`` for many (models loaded once).

Sources are a path (``str`` or ``pathlib.Path``), the bytes of an image file, or a numpy array (``HxWx3``
in the channel order given by ``channels``, ``HxW`` grey, or ``HxWx4`` with alpha).
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from .bundle import load_bundle
from .classifier import Classifier
from .defaults import default_domain_model, resolve_models, shipped_root
from .detector import Detector
from .errors import BundleError, ImageError, SkinInferError
from .finders import make_finder
from .images import DEFAULT_MAX_PIXELS, decode_image, decode_named, read_image, to_bgr8
from .options import AnalysisOptions
from .pipeline import Pipeline
from .results import ImageResult
from .sources import NamedSource, fetch, is_url

Source = Union[str, Path, bytes, np.ndarray, NamedSource]  # noqa: UP007 (a runtime alias, read by 3.10 too)
PREFETCH = 4  # images decoded ahead of the one being analysed


def _name(source: Source) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    if isinstance(source, NamedSource):
        return source.name
    return "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else "<array>"


class Analyzer:
    """Models loaded once; call it on one source, or ``stream`` many.

    Takes an ``AnalysisOptions`` (``options.py``: every option, its default and meaning), or the same options
    as keywords: ``Analyzer(model="none", parser="yunet")``. ``model``: a classifier or detector bundle folder or a
    list of them, ``"default"`` (``$SKIN_INFER_MODEL``, else the shipped models: the acne grader and the wrinkle
    detector for faces and the lesion model for dermoscopy close-ups) or ``None``/``"none"`` (colour measures
    only); each model runs only where its bundle says it applies (``routing.py``). ``channels``: the channel
    order of numpy arrays you pass ("RGB" as Pillow, scikit-image and matplotlib give them, or "BGR" as OpenCV
    does).
    """

    def __init__(self, options: AnalysisOptions | None = None, **overrides):
        options = (options or AnalysisOptions()).replace(**overrides) if overrides else options or AnalysisOptions()
        self.options = options
        bundles = [load_bundle(b) for b in resolve_models(options.model)]
        for b in bundles:
            if b.kind not in ("classifier", "detector"):
                raise BundleError(f"{b.path}: a {b.kind} bundle is not a --model; give it with --parser-model.")
        # the shipped models (verified when they were packaged) start when a photo first needs them; a bundle
        # given by hand is loaded and checked now, so a bad one is a usage error before any photo
        root = shipped_root()
        ours = {b.path for b in bundles if root is not None and b.path.is_relative_to(root.resolve())}
        finder = make_finder(options.parser, options.parser_model, options.device, options.threads,
                             options.min_face_score)  # fmt: skip
        classifiers = [
            Classifier(b, options.device, options.threads, options.top_k, options.min_confidence, lazy=b.path in ours)
            for b in bundles
            if b.kind == "classifier"
        ]
        detectors = [
            Detector(b, options.device, options.threads, options.min_confidence, lazy=b.path in ours)
            for b in bundles
            if b.kind == "detector"
        ]
        if options.explain and not any(c.has_cam for c in classifiers):
            what = "these bundles have no CAM output" if classifiers else "there is no classifier"
            raise SkinInferError(
                f"{what}, so --explain cannot draw heatmaps; give a classifier bundle exported with its CAM output."
            )
        # what a photo without a face shows: whether it is measured, and which models apply (routing.py); loaded
        # on the first photo without a face, so face photos (and cold starts) never pay for it
        domain = default_domain_model()
        device, threads = options.device, options.threads
        domain_model = functools.cache(lambda: Classifier(domain, device, threads))
        pipeline = Pipeline(
            finder, classifiers, options.min_skin, options.explain, domain_model, options.light, detectors
        )
        self._setup(pipeline, options.max_pixels, options.channels)

    def _setup(self, pipeline: Pipeline, max_pixels: int, channels: str) -> None:
        self.pipeline, self.finder, self.classifiers = pipeline, pipeline.finder, pipeline.classifiers
        self.detectors = pipeline.detectors
        self.max_pixels, self.channels = max_pixels, channels

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline, max_pixels: int = DEFAULT_MAX_PIXELS, channels: str = "RGB"):
        """An Analyzer around models already loaded (a custom finder, a classifier shared with other code)."""
        analyzer = cls.__new__(cls)
        analyzer.options = AnalysisOptions(max_pixels=max_pixels, channels=channels)  # the models are the pipeline's
        analyzer._setup(pipeline, max_pixels, channels)
        return analyzer

    @property
    def heads(self) -> list[tuple[str, tuple[str, ...]]]:
        """(name, labels) of each classifier head, in output order, all models."""
        return [(h.name, h.labels) for c in self.classifiers for h in c.heads]

    def describe(self) -> str:
        """Which models run where, for a log line."""
        text = f"faces: {self.finder.name} ({self.finder.provider})"
        if not self.classifiers and not self.detectors:
            return text + ", no model"
        models = [f"{c.name} ({c.domain or 'any'}, {c.provider})" for c in [*self.classifiers, *self.detectors]]
        return text + ", models: " + ", ".join(models)

    def load(self, source: Source) -> np.ndarray:
        """Decode a source to BGR uint8 (the pipeline's input); ImageError when it cannot be."""
        if isinstance(source, NamedSource):
            if source.error is not None:
                raise ImageError(source.error)
            if source.image is not None:
                return source.image
            return decode_named(source.data or b"", source.name, self.max_pixels)
        if isinstance(source, str) and is_url(source):  # downloaded here, in the stream's reader threads
            return decode_named(fetch(source), source, self.max_pixels)
        if isinstance(source, (str, Path)):
            return read_image(source, self.max_pixels)
        if isinstance(source, (bytes, bytearray, memoryview)):
            return decode_image(bytes(source), self.max_pixels)
        if isinstance(source, np.ndarray):
            if source.ndim not in (2, 3) or (source.ndim == 3 and source.shape[2] not in (1, 3, 4)):
                raise ImageError(f"an array of shape {source.shape} is not an image; give HxW, HxWx3 or HxWx4")
            if source.shape[0] * source.shape[1] > self.max_pixels:
                raise ImageError(
                    f"{source.shape[1]}x{source.shape[0]} pixels is above the limit of {self.max_pixels:,}"
                )
            image = to_bgr8(np.ascontiguousarray(source))
            if self.channels == "RGB" and source.ndim == 3 and source.shape[2] >= 3:
                image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
            return image
        raise TypeError(f"cannot analyse a {type(source).__name__}; give a path, bytes or a numpy array")

    def __call__(self, source: Source, name: str | None = None) -> ImageResult:
        """Analyse one image; raises ImageError when it cannot be decoded."""
        start = time.perf_counter()
        image = self.load(source)
        result = self.pipeline.analyze(image, name or _name(source), (time.perf_counter() - start) * 1e3)
        return _with_frame(result, source)

    def _load_timed(self, source: Source):
        start = time.perf_counter()
        try:
            return self.load(source), (time.perf_counter() - start) * 1e3
        except (ImageError, TypeError) as exc:
            return str(exc), 0.0

    def analyze_decoded(self, image: np.ndarray, name: str, decode_ms: float = 0.0) -> ImageResult:
        """The pipeline on a decoded image; any failure becomes that image's error result."""
        try:
            return self.pipeline.analyze(image, name, decode_ms)
        except Exception as exc:  # one image must never stop a batch
            return ImageResult.failed(name, f"{name}: analysis failed ({type(exc).__name__}: {exc})")

    def stream(self, sources: Iterable[Source], prefetch: int = PREFETCH) -> Iterator[ImageResult]:
        """One result per source, in order, decoding the next ones in background threads (OpenCV's decoders
        release the GIL). A bad source gives an error result; the stream goes on."""
        sources = iter(sources)
        with ThreadPoolExecutor(max_workers=2) as pool:
            pending: deque = deque()
            for source in sources:
                pending.append((source, pool.submit(self._load_timed, source)))
                if len(pending) > prefetch:
                    break
            while pending:
                source, future = pending.popleft()
                nxt = next(sources, None)
                if nxt is not None:
                    pending.append((nxt, pool.submit(self._load_timed, nxt)))
                image, decode_ms = future.result()
                del future
                name = _name(source)
                if isinstance(image, str):
                    yield _with_frame(ImageResult.failed(name, image), source)
                else:
                    yield _with_frame(self.analyze_decoded(image, name, decode_ms), source)
                del image, source


def _with_frame(result: ImageResult, source: Source) -> ImageResult:
    """A video frame's result says which frame it is."""
    if isinstance(source, NamedSource):
        result.frame, result.time_s = source.frame, source.time_s
    return result


def analyze(source: Source, **options) -> ImageResult:
    """Analyse one image with the default models (or ``Analyzer`` options): ``analyze("photo.jpg")``."""
    return Analyzer(**options)(source)
