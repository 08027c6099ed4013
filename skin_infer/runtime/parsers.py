"""SegFormer face parsing from a ``face-parser`` bundle: per-pixel labels give the skin mask and landmarks.

Published face parsers (CelebAMask-HQ) are trained on face crops, so each face a detector finds is
cropped with a margin, all crops go through one batched call, and the label maps are pasted back.
Label ids come from the manifest's ``id2label``; which labels are skin, eyes, nose and mouth from its
``skin_labels`` and ``parts`` (never hard-coded: label orders differ between published parsers).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .bundle import Bundle, load_bundle
from .errors import BundleError
from .faces import Face, FaceParse
from .preprocess import preprocess
from .session import create_session

MARGIN = 0.25  # each side of the face box, as a fraction of its size: parsers expect some hair and neck
# Shares of the detector's box the parse must show for a detection to count as a face (see _confirmed).
# Small faces parse without eyes, so eyes/brows or a mouth will do beside the nose (measured: docs/face-parser.md).
CONFIRM = {"face_skin": 0.25, "nose": 0.0015, "eyes_or_brows": 0.0015, "mouth": 0.002}
SMALL_FACE, SMALL_FACE_SCORE = 48, 0.8  # pixels (box side), YuNet score
LABEL_SIDE = 320  # long side of a face's label map: above the parser's own resolution, far below a close-up's


class SegFormerParser:
    name = "segformer"

    def __init__(
        self, bundle: str | Path | Bundle, detector, device: str = "auto", threads: int = 0, confirm: bool = True
    ):
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle, kind="face-parser")
        manifest, where = self.bundle.manifest, self.bundle.path
        raw = manifest.get("id2label")
        try:
            id2label = {int(k): v for k, v in raw.items() if isinstance(v, str)}
        except (AttributeError, ValueError, TypeError):
            id2label = {}
        if not id2label or len(id2label) != len(raw) or not all(0 <= k < 256 for k in id2label):
            raise BundleError(
                f"{where}: a face-parser manifest needs 'id2label' mapping label ids (0-255) to names; re-export it."
            )
        if not isinstance(manifest.get("skin_labels"), list) or not isinstance(manifest.get("parts") or {}, dict):
            raise BundleError(f"{where}: 'skin_labels' must be a list and 'parts' an object of lists.")
        by_name = {v: k for k, v in id2label.items()}
        unknown = [n for n in manifest.get("skin_labels", []) if n not in by_name]
        if unknown or not manifest.get("skin_labels"):
            raise BundleError(
                f"{where}: skin_labels {unknown or '[]'} are not labels of this parser ({sorted(by_name)})."
            )
        self.id2label = id2label
        self.skin_ids = [by_name[n] for n in manifest["skin_labels"]]
        self.part_ids = {
            part: [by_name[n] for n in names if n in by_name] for part, names in (manifest.get("parts") or {}).items()
        }
        # Regions need skin without the nose (forehead, cheeks, chin) and the face's whole skin (skin_labels).
        self.part_ids.setdefault("skin", [i for i in self.skin_ids if i not in self.part_ids.get("nose", [])])
        self.part_ids["face_skin"] = self.skin_ids
        self.detector, self.confirm = detector, confirm
        self.session = create_session(
            self.bundle.model, device, threads, self.bundle.model_path, digest=self.bundle.model_sha256
        )
        self.provider = self.session.get_providers()[0]
        self.input_name = self.bundle.input_spec.name or self.session.get_inputs()[0].name
        outputs = manifest["outputs"]
        self.output_name = outputs.get("labels") or outputs.get("logits")
        self.output_is_labels = "labels" in outputs
        graph_outputs = {o.name: o for o in self.session.get_outputs()}
        if self.output_name not in graph_outputs:
            raise BundleError(f"{where}: manifest output {self.output_name!r} is not in the graph.")
        n_classes = graph_outputs[self.output_name].shape[1] if not self.output_is_labels else None
        if isinstance(n_classes, int) and n_classes != len(id2label):
            raise BundleError(f"{where}: the graph gives {n_classes} classes but id2label has {len(id2label)}.")

    def _label_maps(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        """One label map per crop, at the crop's size capped to ``LABEL_SIDE`` on its long side. Logits are
        upsampled before the argmax (smooth part borders); a graph that outputs labels is resized with nearest
        neighbour."""
        out = self.session.run([self.output_name], {self.input_name: preprocess(crops, self.bundle.input_spec)})[0]
        maps = []
        for crop, scores in zip(crops, out, strict=True):
            h, w = crop.shape[:2]
            shrink = min(1.0, LABEL_SIDE / max(h, w))
            size = (max(1, round(w * shrink)), max(1, round(h * shrink)))
            if self.output_is_labels:
                maps.append(cv2.resize(scores.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST))
            else:
                up = cv2.resize(np.ascontiguousarray(scores.transpose(1, 2, 0)), size, interpolation=cv2.INTER_LINEAR)
                maps.append(up.reshape(size[1], size[0], -1).argmax(axis=2).astype(np.uint8))
        return maps

    def _landmarks(self, labels: np.ndarray, offset: np.ndarray, scale: float) -> np.ndarray | None:
        def pixels(part: str) -> np.ndarray:
            ys, xs = np.nonzero(np.isin(labels, self.part_ids.get(part, [])))
            return np.stack([xs, ys], axis=1).astype(np.float32)

        eyes, nose, mouth = pixels("eye"), pixels("nose"), pixels("mouth")
        if min(len(eyes), len(nose), len(mouth)) < 4:
            return None
        mid = float(np.median(nose[:, 0]))
        left, right = eyes[eyes[:, 0] < mid], eyes[eyes[:, 0] >= mid]
        if min(len(left), len(right)) < 2:
            return None
        tip = np.array([mid, np.percentile(nose[:, 1], 80)], np.float32)
        mouth_y = float(mouth[:, 1].mean())
        corners = [mouth[mouth[:, 0].argmin()], mouth[mouth[:, 0].argmax()]]
        points = [
            left.mean(axis=0),
            right.mean(axis=0),
            tip,
            [corners[0][0], mouth_y],
            [corners[1][0], mouth_y],
        ]
        return np.asarray(points, np.float32) / scale + offset

    def _confirmed(self, face: Face, parse: FaceParse) -> bool:
        """Does the parse show a face where the detector found one? Skin covers a good part of the box, a nose
        is there, and eyes or brows or a mouth: on skin close-ups, pets and patterns, rarely all of them."""
        x, y, w, h = face.box
        if max(w, h) < SMALL_FACE and face.score >= SMALL_FACE_SCORE:
            return True  # too small for the parser to show eyes or a mouth: the detector's confidence decides
        wx, wy = parse.window[:2]
        s = parse.scale
        x0, y0 = max(0, round((x - wx) * s)), max(0, round((y - wy) * s))
        inside = parse.labels[y0 : y0 + max(1, round(h * s)), x0 : x0 + max(1, round(w * s))]
        if inside.size == 0:
            return False

        def share(part: str) -> float:
            return float(np.isin(inside, parse.parts.get(part, [])).mean())

        return (
            share("face_skin") >= CONFIRM["face_skin"]
            and share("nose") >= CONFIRM["nose"]
            and (share("eye") + share("brow") >= CONFIRM["eyes_or_brows"] or share("mouth") >= CONFIRM["mouth"])
        )

    def detect(self, image: np.ndarray) -> tuple[list[Face], np.ndarray | None]:
        faces, _ = self.detector.detect(image)
        if not faces:
            return faces, None
        h, w = image.shape[:2]
        windows = []
        for face in faces:
            x, y, bw, bh = face.box
            x0, y0 = max(0, round(x - MARGIN * bw)), max(0, round(y - MARGIN * bh))
            x1, y1 = min(w, round(x + bw * (1 + MARGIN))), min(h, round(y + bh * (1 + MARGIN)))
            windows.append((x0, y0, x1, y1))
        skin = np.zeros((h, w), bool)  # one mask for all faces of the image
        kept = []
        maps = self._label_maps([image[y0:y1, x0:x1] for x0, y0, x1, y1 in windows])
        for face, (x0, y0, x1, y1), labels in zip(faces, windows, maps, strict=True):
            face.parse = FaceParse((x0, y0, x1 - x0, y1 - y0), labels, self.part_ids)
            if self.confirm and not self._confirmed(face, face.parse):
                continue
            window_skin = np.isin(labels, self.skin_ids).astype(np.uint8)
            skin[y0:y1, x0:x1] |= cv2.resize(window_skin, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST) > 0
            parsed = self._landmarks(labels, np.array([x0, y0], np.float32), face.parse.scale)
            if parsed is not None:
                face.landmarks = parsed
            kept.append(face)
        return kept, (skin if kept else None)
