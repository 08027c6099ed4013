"""What the stages of the analysis of one photo share: the ``Frame`` each stage reads and fills in, and the
stage contract (``pipeline.py`` runs them in order).

A stage is an object with ``timing`` (the ``timings_ms`` key its time adds to: ``faces``, ``regions`` or
``classify``) and ``__call__(frame) -> None``; it reads the fields earlier stages filled and fills its own:

    finders.FindFaces       faces (each with the finder's ``box``, ``score``, ``landmarks``; a parser adds
                            ``parse``, its label map) and ``parsed_skin`` (a parser's skin mask, else None)
    routing.WeakFaces       faces: none left when all were weak and the domain model sees a skin close-up
    regions.PlaceRegions    regions: one ``Region`` per face and region name (box and parsed mask; a region the
                            parser did not see has no box), or the whole image when there is no face
    skin.MaskSkin           work (the working copy), scale, skin (the skin mask on the working copy)
    light.EstimateLight     light, colourless
    routing.DecideDomain    domain (photos without a face only)
    skin.MeasureRegions     each region's skin_fraction and measures, skin_of, classifiable
    classifier.Classify     predictions, cams, not_run
    detector.DetectWrinkles wrinkles, wrinkle_score and the wrinkle measures
    routing.NoteUnanswered  a face-less photo's note saying why no model answered

The working copy is small enough that the largest face spans at most ``WORK_FACE_SIDE`` pixels: means and
fractions do not need more, and a close-up then costs what a group photo does. Crops for models always come from
the full-resolution ``image``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:  # the stage modules import this one: types only, no import circle
    from .faces import Face
    from .light import Light
    from .regions import Box
    from .results import DomainDecision, Region


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    x, y, w, h = box
    return image[y : y + h, x : x + w]


@dataclass
class Frame:
    image: np.ndarray  # BGR uint8, full resolution
    file: str
    faces: list[Face] = field(default_factory=list)
    parsed_skin: np.ndarray | None = None
    regions: list[Region] = field(default_factory=list)
    work: np.ndarray | None = None
    scale: tuple[float, float] = (1.0, 1.0)  # working-copy pixels per image pixel, x and y
    skin: np.ndarray | None = None  # on the working copy
    light: Light | None = None
    colourless: bool = False
    domain: DomainDecision | None = None
    not_skin: bool = False  # a face-less photo the domain model placed outside every skin domain: not measured
    classifiable: list[int] = field(default_factory=list)  # indices of regions with enough skin to classify
    skin_of: dict[int, tuple[Box, np.ndarray]] = field(default_factory=dict)  # region -> (working box, skin mask)
    cams: dict[int, np.ndarray] = field(default_factory=dict)
    not_run: dict[str, str] = field(default_factory=dict)  # model name -> why it did not run (somewhere)

    @property
    def size(self) -> tuple[int, int]:
        return self.image.shape[1], self.image.shape[0]

    def to_work(self, box: Box) -> Box:
        """A full-image box in the working copy's pixels, at least 1x1 and inside it: rounding each side
        separately may otherwise reach one pixel past the image's edge, and a mask sized to the box would not
        match its crop."""
        x, y, w, h = box
        (sx, sy), shape = self.scale, self.work.shape
        x0, y0 = min(round(x * sx), shape[1] - 1), min(round(y * sy), shape[0] - 1)
        x1, y1 = min(round((x + w) * sx), shape[1]), min(round((y + h) * sy), shape[0])
        return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


class Stage(Protocol):
    timing: str

    def __call__(self, frame: Frame) -> None: ...
