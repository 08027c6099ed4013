"""A detector bundle (wrinkles) run in ONNX Runtime: boxes by type on each face crop, in image pixels.

The manifest declares the classes, the input (``resize: letterbox``), the score thresholds, the face margin of the
crop it was trained at the scale of, and the reference count behind ``wrinkle_score``; the graph's outputs are
decoded in ``detections.py``. Routing (``routing.py``) treats it like a classifier: ``domain`` face,
``applies_to`` face (the face crop; a face-skin close-up whole).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .bundle import Bundle, load_bundle
from .detections import Boxes, decode, letterbox
from .errors import BundleError
from .frame import crop
from .preprocess import preprocess
from .results import Box, Wrinkle
from .routing import targets
from .session import BundleSession

if TYPE_CHECKING:
    from .frame import Frame


def _number(manifest: dict, key: str, where: Path, low: float, high: float) -> float:
    value = manifest.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise BundleError(f"{where}: {key} {value!r} must be a number in {low}..{high}; re-export the bundle.")
    return float(value)


class Detector(BundleSession):
    def __init__(
        self,
        bundle: str | Path | Bundle,
        device: str = "auto",
        threads: int = 0,
        min_confidence: float | None = None,
        lazy: bool = False,
    ):
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle, kind="detector")
        manifest, where = self.bundle.manifest, self.bundle.path
        self.classes = manifest.get("classes")
        if not (isinstance(self.classes, list) and self.classes and all(isinstance(c, str) for c in self.classes)):
            raise BundleError(f"{where}: 'classes' must be a non-empty list of names; re-export the bundle.")
        spec = self.bundle.input_spec
        if spec.resize != "letterbox":
            raise BundleError(f"{where}: a detector's input is letterboxed (input.resize 'letterbox').")
        self.domain, self.applies_to = "face", "face"
        self.attribute = manifest.get("attribute", "wrinkles")
        # boxes from report_threshold up are reported (ranked by score: what mAP is measured on); those below
        # score_threshold (the best box F1 on val) are marked uncertain and not counted
        self.threshold = _number(manifest, "score_threshold", where, 0.0, 1.0)
        if min_confidence is not None:
            self.threshold = min_confidence
        self.report_threshold = min(_number(manifest, "report_threshold", where, 0.0, 1.0), self.threshold)
        self.nms_iou = _number(manifest, "nms_iou", where, 0.0, 1.0)
        self.face_margin = _number(manifest, "face_margin", where, 0.0, 3.0)
        self.reference_count = _number(manifest, "reference_count", where, 0.5, 1000.0)
        self.min_face_px = manifest.get("min_face_px", 0)
        self.needs_colour = manifest.get("needs_colour") is True  # no answer for colourless photos
        self.output_names = [manifest["outputs"].get("scores"), manifest["outputs"].get("boxes")]
        self._start(device, threads, lazy)

    def _check_graph(self, session) -> None:
        spec, where = self.bundle.input_spec, self.bundle.path
        self.input_name = spec.name or session.get_inputs()[0].name
        graph_outputs = {o.name for o in session.get_outputs()}
        if not all(n in graph_outputs for n in self.output_names):
            raise BundleError(f"{where}: the manifest's scores/boxes outputs are not in the graph; re-export it.")

    def _check_outputs(self, outputs: dict[str, np.ndarray]) -> None:
        scores, boxes = (outputs[n] for n in self.output_names)
        if scores.ndim != 4 or scores.shape[1] != len(self.classes) or boxes.shape[1] != 4:
            raise BundleError(
                f"{self.bundle.path}: the graph gives scores {list(scores.shape)} and boxes {list(boxes.shape)}, not "
                f"[N, {len(self.classes)}, H, W] and [N, 4, H, W]; re-export the bundle."
            )

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def has_cam(self) -> bool:
        return False

    def run(self, crops_bgr: list[np.ndarray]) -> list[Boxes]:
        """Per crop, its boxes in the crop's pixels (x1, y1, x2, y2), from the report threshold up."""
        size = self.bundle.input_spec.size[0]
        framed = [letterbox(c, size) for c in crops_bgr]
        batch = preprocess([canvas for canvas, _ in framed], self.bundle.input_spec)
        scores, boxes = self._outputs(self.output_names, batch)
        found = []
        for s, b, (_, framing) in zip(scores, boxes, framed, strict=True):
            d = decode(s, b, self.report_threshold, self.nms_iou)
            found.append(Boxes(d.classes, d.scores, framing.to_source(d.xyxy)))
        return found

    def score(self, count: int) -> float:
        """``wrinkle_score`` (0-100) of a face from the number of wrinkles found: ``100 * (1 - exp(-n / N))``,
        ``N`` the median number of human-labelled wrinkles on the val photos that have any (the manifest's
        ``reference_count``): a face with as many as that median scores 63, one with none 0, twice as many 86."""
        return round(100 * (1 - math.exp(-count / self.reference_count)), 1)


class DetectWrinkles:
    """The detect stage: each detector on the crops routing gives it (a face's crop at its manifest's framing, a
    face-skin close-up whole), its boxes in image pixels on that region, and per region of the same face over
    the confident boxes: ``wrinkle_count`` (boxes centred in the region's box; the region it ran on: all of
    them) and ``wrinkle_density`` (the share of the region's skin the boxes cover). Where it did not run, the
    measures are null (not applicable), never 0."""

    timing = "classify"

    def __init__(self, detectors: list[Detector]):
        self.detectors = detectors

    def __call__(self, frame: Frame) -> None:
        for detector in self.detectors:
            picks, note = targets(detector, frame)
            if note:
                frame.not_run[detector.name] = note
            if picks:
                found = detector.run([crop(frame.image, box) for _, box in picks])
                for (i, box), boxes in zip(picks, found, strict=True):
                    self._measure(frame, detector, i, box, boxes)
        for region in frame.regions if self.detectors else []:
            if region.measures is not None:
                region.measures.setdefault("wrinkle_count", None)
                region.measures.setdefault("wrinkle_density", None)

    @staticmethod
    def _measure(frame: Frame, detector: Detector, index: int, box: Box, boxes: Boxes) -> None:
        target = frame.regions[index]
        xyxy = boxes.xyxy + np.array([box[0], box[1], box[0], box[1]], np.float64)
        target.wrinkles = [
            Wrinkle(detector.classes[k], (round(x1), round(y1), round(x2 - x1), round(y2 - y1)), round(float(s), 3),
                    bool(s < detector.threshold))
            for k, s, (x1, y1, x2, y2) in zip(boxes.classes, boxes.scores, xyxy, strict=True)
        ]  # fmt: skip
        xyxy = xyxy[boxes.scores >= detector.threshold]
        scale = np.array([*frame.scale, *frame.scale])
        centres = (xyxy[:, :2] + xyxy[:, 2:]) / 2
        for i, region in enumerate(frame.regions):
            if i not in frame.skin_of or region.face_index != target.face_index or region.measures is None:
                continue
            (sx, sy, sw, sh), mask = frame.skin_of[i]
            x, y, w, h = region.box
            inside = (centres[:, 0] >= x) & (centres[:, 0] < x + w) & (centres[:, 1] >= y) & (centres[:, 1] < y + h)
            covered = np.zeros((sh, sw), bool)
            for x1, y1, x2, y2 in np.round(xyxy * scale).astype(int) - [sx, sy, sx, sy]:
                covered[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)] = True
            on_skin = mask > 0
            region.measures["wrinkle_count"] = int(inside.sum()) if i != index else len(xyxy)
            region.measures["wrinkle_density"] = (
                round(float((covered & on_skin).sum() / on_skin.sum()), 4) if on_skin.any() else None
            )
        target.wrinkle_score = detector.score(len(xyxy))
