"""The face-finding role: what a finder is, and the table of finders ``--parser`` chooses from.

A finder has ``name``, ``provider`` and ``detect(image) -> (faces, skin mask or None)``. Detectors (YuNet,
Haar: ``faces.py``) give boxes and landmarks and leave skin to the colour model; a parser (SegFormer:
``parsers.py``) wraps a detector and labels every pixel of each face, which gives the skin mask.
To add a finder: write its class, add a factory to ``FINDERS``; the CLI's choices come from this table.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .bundle import MANIFEST
from .defaults import default_parser, yunet_file
from .errors import BundleError, SkinInferError
from .faces import Face, HaarDetector, YuNetDetector
from .parsers import SegFormerParser

WEAK_FACE_SCORE = 0.4  # the weakest detection a parser is asked to confirm (docs/face-parser.md)

if TYPE_CHECKING:
    from .frame import Frame


class FaceFinder(Protocol):
    """The finder contract. ``detect(image)`` takes a BGR uint8 image and returns its faces and its skin mask:

    - each ``Face`` (``faces.py``) has ``box`` (x, y, w, h in image pixels), ``score`` and ``landmarks`` (5 points
      in ``LANDMARK_NAMES`` order, or None: regions are then placed from the box);
    - a parser also sets ``Face.parse`` (a ``FaceParse``: its label map over a window, and which labels are
      skin, nose, eyes, brows, mouth) on every face it confirms, drops the detections it does not confirm, and
      returns the image's skin mask (uint8 0/1, the image's size); a detector returns None for the mask.
    """

    name: str
    provider: str

    def detect(self, image: np.ndarray) -> tuple[list[Face], np.ndarray | None]: ...


class FindFaces:
    """The find stage: the finder's faces and skin mask on the frame."""

    timing = "faces"

    def __init__(self, finder: FaceFinder):
        self.finder = finder

    def __call__(self, frame: Frame) -> None:
        frame.faces, frame.parsed_skin = self.finder.detect(frame.image)


class NoFaces:
    """``--parser none``: every image is analysed whole (dermoscopy, close-ups)."""

    name = "none"
    provider = "none"

    def detect(self, image: np.ndarray) -> tuple[list[Face], None]:
        return [], None


def _is_bundle(model: Path | None) -> bool:
    return model is not None and (model / MANIFEST).is_file()


def _yunet_file(model: Path | None) -> Path:
    yunet = model if model is not None and not _is_bundle(model) else yunet_file()
    if yunet is None:
        raise BundleError(
            "--parser yunet needs the YuNet model, which this install does not ship: run `skin models pull yunet`, "
            "or give the .onnx file with --parser-model."
        )
    return yunet


def _segformer(model: Path | None, device: str, threads: int) -> SegFormerParser:
    bundle = model if _is_bundle(model) else default_parser() if model is None else None
    if bundle is None:
        raise BundleError(
            "--parser segformer needs a face-parser bundle: give its folder with --parser-model "
            "(make one with `skin export parser`)."
        )
    yunet = yunet_file()
    detector = YuNetDetector(yunet, device, threads) if yunet else HaarDetector()
    return SegFormerParser(bundle, detector, device, threads)


def _auto(model: Path | None, device: str, threads: int) -> FaceFinder:
    """The best finder there is: a parser bundle (given, or shipped) over YuNet, else YuNet, else Haar."""
    if _is_bundle(model) or (model is None and default_parser() is not None):
        return _segformer(model, device, threads)
    if model is not None or yunet_file() is not None:
        return YuNetDetector(_yunet_file(model), device, threads)
    return HaarDetector()


# name -> factory(parser_model, device, threads)
FINDERS: dict[str, Callable[[Path | None, str, int], FaceFinder]] = {
    "auto": _auto,
    "segformer": _segformer,
    "yunet": lambda model, device, threads: YuNetDetector(_yunet_file(model), device, threads),
    "haar": lambda model, device, threads: HaarDetector(),
    "none": lambda model, device, threads: NoFaces(),
}


def make_finder(
    parser: str = "auto",
    parser_model: str | Path | None = None,
    device: str = "auto",
    threads: int = 0,
    min_face_score: float | None = None,
) -> FaceFinder:
    """The finder for ``--parser`` / ``--parser-model`` (``--min-face-score``: the detector's threshold)."""
    if parser not in FINDERS:
        raise SkinInferError(f"unknown parser {parser!r}; choose one of {', '.join(FINDERS)}.")
    model = Path(parser_model) if parser_model else None
    if model is not None and not model.exists():
        raise BundleError(f"{model}: --parser-model does not exist; give a face-parser bundle folder or a YuNet .onnx.")
    finder = FINDERS[parser](model, device, threads)
    detector = getattr(finder, "detector", finder)  # a parser finds faces with its detector
    if min_face_score is not None and hasattr(detector, "score_threshold"):
        detector.score_threshold = min_face_score
    elif getattr(finder, "confirm", False) and hasattr(detector, "score_threshold"):
        # a parser confirms each detection, so weaker ones are looked at too; routing.WeakFaces keeps them
        # unless the domain model sees a skin close-up (black-and-white portraits of old faces score 0.41-0.59)
        finder.strong_score, detector.score_threshold = detector.score_threshold, WEAK_FACE_SCORE
    return finder
