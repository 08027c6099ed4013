"""A detector bundle (wrinkles) run in ONNX Runtime: boxes by type on each face crop, in image pixels.

The manifest declares the classes, the input (``resize: letterbox``), the score thresholds, the face margin of the
crop it was trained at the scale of, and the reference count behind ``wrinkle_score``; the graph's outputs are
decoded in ``detections.py``. Routing (``routing.py``) treats it like a classifier: ``domain`` face,
``applies_to`` face (the face crop; a face-skin close-up whole).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .bundle import Bundle, load_bundle
from .detections import Boxes, decode, letterbox
from .errors import BundleError
from .preprocess import preprocess
from .session import create_session


def _number(manifest: dict, key: str, where: Path, low: float, high: float) -> float:
    value = manifest.get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise BundleError(f"{where}: {key} {value!r} must be a number in {low}..{high}; re-export the bundle.")
    return float(value)


class Detector:
    def __init__(
        self, bundle: str | Path | Bundle, device: str = "auto", threads: int = 0, min_confidence: float | None = None
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
        self.session = create_session(self.bundle.model, device, threads, self.bundle.model_path)
        self.provider = self.session.get_providers()[0]
        self.input_name = spec.name or self.session.get_inputs()[0].name
        outputs = manifest["outputs"]
        self.output_names = [outputs.get("scores"), outputs.get("boxes")]
        graph_outputs = {o.name for o in self.session.get_outputs()}
        if not all(n in graph_outputs for n in self.output_names):
            raise BundleError(f"{where}: the manifest's scores/boxes outputs are not in the graph; re-export it.")
        blank = np.zeros((1, 3, *spec.size), np.float32)
        try:
            scores, boxes = self.session.run(self.output_names, {self.input_name: blank})
        except Exception as exc:  # onnxruntime's own exception types
            raise BundleError(f"{where}: the graph fails on a blank input ({str(exc)[:200]}); re-export it.") from None
        if scores.ndim != 4 or scores.shape[1] != len(self.classes) or boxes.shape[1] != 4:
            raise BundleError(
                f"{where}: the graph gives scores {list(scores.shape)} and boxes {list(boxes.shape)}, not "
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
        scores, boxes = self.session.run(self.output_names, {self.input_name: batch})
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
