"""One decoded photo in, one ``ImageResult`` out: the analysis as a list of stages, each in the module it
belongs to, each reading and filling one ``Frame`` (``frame.py`` lists what each stage reads and writes).

    find -> weak faces -> regions -> skin -> light -> domain -> measure -> classify -> detect -> note

A new stage is a class with ``timing`` and ``__call__(frame)`` in its own module, added to ``Pipeline.stages``;
a new measure goes into ``MeasureRegions`` (``skin.py``) or its own stage after it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .classifier import Classifier, Classify
from .detector import Detector, DetectWrinkles
from .finders import FindFaces
from .frame import Frame, Stage
from .light import DEFAULT_METHOD, EstimateLight
from .regions import PlaceRegions
from .results import ImageResult
from .routing import DecideDomain, NoteUnanswered, WeakFaces
from .skin import MaskSkin, MeasureRegions


class Pipeline:
    """The analysis of one image with loaded models; ``Analyzer`` (``analyzer.py``) is the public face of it."""

    def __init__(
        self,
        finder,
        classifiers: Classifier | list[Classifier] | None = None,
        min_skin: float = 0.25,
        explain: bool = False,
        domain_model: Callable[[], Classifier] | None = None,
        light: str = DEFAULT_METHOD,
        detectors: list[Detector] | None = None,
    ):
        self.finder, self.domain_model = finder, domain_model
        self.classifiers = [classifiers] if isinstance(classifiers, Classifier) else list(classifiers or [])
        self.detectors = list(detectors or [])
        self.stages: list[Stage] = [
            FindFaces(finder),
            WeakFaces(getattr(finder, "strong_score", None), domain_model),
            PlaceRegions(),
            MaskSkin(),
            EstimateLight(light),
            DecideDomain(domain_model),
            MeasureRegions(min_skin),
            Classify(self.classifiers, explain),
            DetectWrinkles(self.detectors),
            NoteUnanswered(),
        ]

    def analyze(self, image, file: str, decode_ms: float = 0.0) -> ImageResult:
        """Analyse a BGR uint8 image; ``file`` names it in the result."""
        frame = Frame(image, file)
        timings = {"decode": decode_ms, "faces": 0.0, "regions": 0.0, "classify": 0.0}
        for stage in self.stages:
            start = time.perf_counter()
            stage(frame)
            timings[stage.timing] += (time.perf_counter() - start) * 1e3
        w, h = frame.size
        return ImageResult(
            file=file,
            status="ok",
            width=w,
            height=h,
            faces=frame.faces,
            regions=frame.regions,
            timings_ms={k: round(v, 2) for k, v in timings.items()},
            domain=frame.domain,
            not_run=frame.not_run,
            light=frame.light,
            image=image,
            skin=frame.skin,
            cams=frame.cams,
        )
