"""Face finders behind one interface: ``detect(image) -> (faces, skin mask or None)``.

Detectors give no skin mask (the colour model makes one); a face parser gives one for the whole image.

Landmarks are five points in image coordinates, in YuNet's order: the eye on the image's left
(the subject's right eye), the eye on the image's right, nose tip, mouth corner on the image's left,
mouth corner on the image's right. Finders that have no landmarks leave them ``None``; regions then
place them from the box.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import BundleError
from .session import create_session

LANDMARK_NAMES = ("eye_image_left", "eye_image_right", "nose_tip", "mouth_image_left", "mouth_image_right")


@dataclass
class FaceParse:
    """A face parser's labels for one face: a label map over ``window`` (x, y, w, h in the image; the map itself
    is at most ``LABEL_SIDE`` pixels long, enough for regions and measures) and which label ids play which part
    (``skin``, ``nose``, ``eye``, ``brow``, ``mouth``; ``face_skin``: skin + nose)."""

    window: tuple[int, int, int, int]
    labels: np.ndarray  # uint8
    parts: dict[str, list[int]]

    @property
    def scale(self) -> float:
        """Label-map pixels per image pixel."""
        return self.labels.shape[1] / self.window[2]

    def mask(self, part: str) -> np.ndarray:
        return np.isin(self.labels, self.parts.get(part, []))

    def full_labels(self) -> np.ndarray:
        """The label map at the window's size in the image."""
        size = self.window[2:]
        if self.labels.shape[::-1] == tuple(size):
            return self.labels
        return cv2.resize(self.labels, size, interpolation=cv2.INTER_NEAREST)


@dataclass
class Face:
    box: tuple[int, int, int, int]  # x, y, w, h
    score: float
    landmarks: np.ndarray | None = None  # (5, 2) float, see LANDMARK_NAMES
    parse: FaceParse | None = None  # set by a face parser; never serialised
    track: int | None = None  # in a video: the person this face follows across frames (sources.track_faces)

    def to_dict(self, index: int) -> dict:
        out = {"index": index, "box": [int(v) for v in self.box], "score": round(float(self.score), 4)}
        if self.landmarks is not None:
            out["landmarks"] = {
                n: [round(float(x), 1), round(float(y), 1)]
                for n, (x, y) in zip(LANDMARK_NAMES, self.landmarks, strict=True)
            }
        if self.track is not None:
            out["track"] = self.track
        return out


def _downscale(image: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    scale = min(1.0, long_side / max(h, w))
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return image, scale


class HaarDetector:
    """OpenCV's frontal-face cascade (ships inside opencv-python): always there, no landmarks."""

    name = "haar"
    provider = "opencv"

    def __init__(self, long_side: int = 320, min_neighbors: int = 5):
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise BundleError(f"{path}: OpenCV's Haar cascade could not be loaded; reinstall opencv-python-headless.")
        self.long_side = long_side
        self.min_neighbors = min_neighbors

    def detect(self, image: np.ndarray) -> tuple[list[Face], None]:
        small, scale = _downscale(image, self.long_side)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
        min_side = max(20, round(0.06 * max(gray.shape)))
        boxes, _, weights = self.cascade.detectMultiScale3(
            gray,
            scaleFactor=1.1,
            minNeighbors=self.min_neighbors,
            minSize=(min_side, min_side),
            outputRejectLevels=True,
        )
        faces = [
            Face(tuple(round(v / scale) for v in box), float(weight))
            for box, weight in zip(boxes, np.ravel(weights), strict=False)
        ]
        return sorted(faces, key=lambda f: -f.box[2] * f.box[3]), None


class YuNetDetector:
    """YuNet (libfacedetection) ONNX in onnxruntime, fixed-size or dynamic-shape files; five landmarks."""

    name = "yunet"
    strides = (8, 16, 32)

    def __init__(
        self,
        model: str | Path,
        device: str = "auto",
        threads: int = 0,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        long_side: int = 640,
    ):
        self.model = Path(model)
        if not self.model.is_file():
            raise BundleError(f"{self.model}: YuNet model not found; run `skin models pull yunet` or give its path.")
        self.session = create_session(self.model, device, threads)
        self.provider = self.session.get_providers()[0]
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        h, w = inp.shape[2], inp.shape[3]
        self.fixed = (h, w) if isinstance(h, int) and isinstance(w, int) else None
        self.long_side = long_side
        self.score_threshold, self.nms_threshold = score_threshold, nms_threshold

    def detect(self, image: np.ndarray) -> tuple[list[Face], None]:
        h, w = image.shape[:2]
        target_h, target_w = self.fixed or (self.long_side, self.long_side)
        scale = min(target_w / w, target_h / h)
        rw, rh = max(1, round(w * scale)), max(1, round(h * scale))
        if not self.fixed:  # pad only up to the next multiple of 32
            target_w, target_h = -(-rw // 32) * 32, -(-rh // 32) * 32
        canvas = np.zeros((target_h, target_w, 3), np.float32)
        canvas[:rh, :rw] = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_LINEAR)
        outputs = dict(
            zip(
                [o.name for o in self.session.get_outputs()],
                self.session.run(None, {self.input_name: canvas.transpose(2, 0, 1)[None]}),
                strict=True,
            )
        )
        boxes, scores, points = [], [], []
        for stride in self.strides:
            cols = target_w // stride
            cls, obj = outputs[f"cls_{stride}"][0, :, 0], outputs[f"obj_{stride}"][0, :, 0]
            score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
            keep = np.flatnonzero(score >= self.score_threshold)
            if keep.size == 0:
                continue
            grid = np.stack([keep % cols, keep // cols], axis=1).astype(np.float32)
            bbox = outputs[f"bbox_{stride}"][0, keep]
            centre = (grid + bbox[:, :2]) * stride
            size = np.exp(bbox[:, 2:4]) * stride
            boxes.append(np.concatenate([centre - size / 2, size], axis=1))
            kps = outputs[f"kps_{stride}"][0, keep].reshape(-1, 5, 2)
            points.append((kps + grid[:, None, :]) * stride)
            scores.append(score[keep])
        if not boxes:
            return [], None
        boxes_a, scores_a, points_a = np.concatenate(boxes), np.concatenate(scores), np.concatenate(points)
        keep = cv2.dnn.NMSBoxes(boxes_a.tolist(), scores_a.tolist(), self.score_threshold, self.nms_threshold)
        faces = []
        for i in np.ravel(keep):
            x, y, bw, bh = boxes_a[i] / scale
            x0, y0 = max(0, round(x)), max(0, round(y))
            x1, y1 = min(w, round(x + bw)), min(h, round(y + bh))
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            faces.append(Face((x0, y0, x1 - x0, y1 - y0), float(scores_a[i]), points_a[i] / scale))
        return sorted(faces, key=lambda f: -f.box[2] * f.box[3]), None
