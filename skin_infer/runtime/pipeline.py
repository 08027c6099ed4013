"""One decoded photo in, one ``ImageResult`` out: faces, skin mask, regions, colour measures, predictions, CAMs,
wrinkle boxes and their measures.

Skin masks and colour measures are computed on a working copy small enough that the largest face spans
at most ``WORK_FACE_SIDE`` pixels: means and fractions do not need more, and a close-up then costs what a
group photo does. Classifier crops always come from the full-resolution image.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import cv2
import numpy as np

from .classifier import Classifier
from .detector import Detector
from .errors import BundleError
from .light import DEFAULT_METHOD, estimate
from .regions import REGION_NAMES, Box, parse_regions, place_regions, union_box
from .results import ImageResult, Region, Wrinkle
from .routing import SKIN_DOMAINS, decide_domain, targets
from .skin import (
    ERYTHEMA,
    adaptive_skin_mask,
    colour_measures,
    generic_skin_mask,
    is_monochrome,
    redness_index,
    without_colour,
)

SEED_REGIONS = ("left_cheek", "right_cheek", "nose")
WORK_FACE_SIDE = 192  # largest face window side in the working copy
WORK_IMAGE_SIDE = 512  # long side of the working copy when there is no face


def _crop(image: np.ndarray, box: Box) -> np.ndarray:
    x, y, w, h = box
    return image[y : y + h, x : x + w]


def _to_work(box: Box, scale_x: float, scale_y: float, shape: tuple[int, ...]) -> Box:
    """A full-image box in the working copy's pixels, at least 1x1 and inside it: rounding each side separately
    may otherwise reach one pixel past the image's edge, and a mask sized to the box would not match its crop."""
    x, y, w, h = box
    x0, y0 = min(round(x * scale_x), shape[1] - 1), min(round(y * scale_y), shape[0] - 1)
    x1, y1 = min(round((x + w) * scale_x), shape[1]), min(round((y + h) * scale_y), shape[0])
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


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
        self.finder = finder
        self.detectors = list(detectors or [])
        self.light = light
        self.classifiers = [classifiers] if isinstance(classifiers, Classifier) else list(classifiers or [])
        heads = [h.name for c in self.classifiers for h in c.heads]
        if len(heads) != len(set(heads)):
            raise BundleError(f"two models answer under the same head name ({', '.join(heads)}); use one of them.")
        self.min_skin, self.domain_model = min_skin, domain_model
        self.explain = explain and any(c.has_cam for c in self.classifiers)

    @staticmethod
    def _colour_skin(work: np.ndarray, placed: list[dict[str, Box]]) -> np.ndarray:
        """The colour-model skin mask, each face seeded from its own cheeks and nose."""
        skin = np.zeros(work.shape[:2], np.uint8)
        for regions in placed:
            window = union_box(list(regions.values()))
            wx, wy = window[0], window[1]
            seed = np.zeros(window[3:1:-1], bool)
            for name in SEED_REGIONS:
                if name in regions:
                    x, y, w, h = regions[name]
                    seed[y - wy : y - wy + h, x - wx : x - wx + w] = True
            crop = _crop(skin, window)
            crop |= adaptive_skin_mask(_crop(work, window), seed)
        return skin

    @staticmethod
    def whites(image: np.ndarray, faces) -> np.ndarray:
        """The BGR pixels the parser labelled eye or inner mouth (sclera and teeth are among them)."""
        found = [np.zeros((0, 3), np.uint8)]
        for face in faces:
            if face.parse is None:
                continue
            labels = face.parse.labels
            window = cv2.resize(_crop(image, face.parse.window), labels.shape[::-1], interpolation=cv2.INTER_AREA)
            found.append(window[face.parse.mask("eye") | face.parse.mask("inner_mouth")])
        return np.concatenate(found)

    @staticmethod
    def _relative_measures(regions: list[Region]) -> None:
        """Measures of a region against its own face (``redness_index``); whole images have none."""
        faces: dict[int, dict[str, Region]] = {}
        for region in regions:
            if region.face_index is not None:
                faces.setdefault(region.face_index, {})[region.name] = region
        for named in faces.values():
            values = redness_index({n: r.measures for n, r in named.items()})
            for name, region in named.items():
                if region.measures is not None:
                    region.measures["redness_index"] = values[name]
        for region in regions:
            if region.measures is not None:
                region.measures.setdefault("redness_index", None)
                region.measures.pop(ERYTHEMA, None)

    @staticmethod
    def _wrinkle_measures(detector: Detector, index: int, crop: Box, boxes, regions: list[Region], skin_of, scale):
        """Boxes found in the crop of region ``index`` (a face's face_skin, or a close-up's whole image), in image
        pixels, on that region; for it and every region of the same face, over the confident boxes:
        ``wrinkle_count`` (boxes centred in the region's box) and ``wrinkle_density`` (the share of the region's
        skin the boxes cover)."""
        target = regions[index]
        xyxy = boxes.xyxy + np.array([crop[0], crop[1], crop[0], crop[1]], np.float64)
        target.wrinkles = [
            Wrinkle(detector.classes[k], (round(x1), round(y1), round(x2 - x1), round(y2 - y1)), round(float(s), 3),
                    bool(s < detector.threshold))
            for k, s, (x1, y1, x2, y2) in zip(boxes.classes, boxes.scores, xyxy, strict=True)
        ]  # fmt: skip
        confident = boxes.scores >= detector.threshold
        xyxy = xyxy[confident]
        same = [i for i, r in enumerate(regions) if i in skin_of and r.face_index == target.face_index]
        for i in same:
            region = regions[i]
            if region.measures is None:
                continue
            (sx, sy, sw, sh), mask = skin_of[i]
            x, y, w, h = region.box
            centres = (xyxy[:, :2] + xyxy[:, 2:]) / 2
            inside = (centres[:, 0] >= x) & (centres[:, 0] < x + w) & (centres[:, 1] >= y) & (centres[:, 1] < y + h)
            covered = np.zeros((sh, sw), bool)
            for x1, y1, x2, y2 in np.round(xyxy * np.array([*scale, *scale])).astype(int) - [sx, sy, sx, sy]:
                covered[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)] = True
            on_skin = mask > 0
            region.measures["wrinkle_count"] = int(inside.sum()) if i != index else len(xyxy)
            region.measures["wrinkle_density"] = (
                round(float((covered & on_skin).sum() / on_skin.sum()), 4) if on_skin.any() else None
            )
        target.wrinkle_score = detector.score(len(xyxy))

    def analyze(self, image: np.ndarray, file: str, decode_ms: float = 0.0) -> ImageResult:
        """Analyse a BGR uint8 image; ``file`` names it in the result."""
        h, w = image.shape[:2]
        t0 = time.perf_counter()
        faces, parsed_skin = self.finder.detect(image)
        t1 = time.perf_counter()
        # Per face, name -> (box, mask or None), or None when a parsed face does not show that region.
        placed = [
            parse_regions(f.parse, f.box)
            if f.parse is not None
            else {n: (b, None) for n, b in place_regions(f.box, f.landmarks, w, h).items()}
            for f in faces
        ]
        largest = max(
            (max(union_box([f.box] + [r[0] for r in p.values() if r])[2:]) for f, p in zip(faces, placed, strict=True)),
            default=0,
        )
        scale = min(1.0, WORK_FACE_SIDE / largest) if faces else min(1.0, WORK_IMAGE_SIDE / max(h, w))
        if scale < 1 and min(h, w) * scale >= 1:
            work = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        elif scale < 1:  # a 1-pixel-thin image: its short side must not round to 0 pixels
            work = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        else:
            work = image
        scale_y, scale_x = work.shape[0] / h, work.shape[1] / w
        spans = [
            (index, name, face_regions[name])
            for index, face_regions in enumerate(placed)
            for name in REGION_NAMES
            if name in face_regions
        ]
        if not faces:
            spans.append((None, "whole_image", ((0, 0, w, h), None)))
            skin = generic_skin_mask(work)
        elif parsed_skin is not None:
            skin = cv2.resize(parsed_skin.astype(np.uint8), work.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        else:
            boxes = [{n: _to_work(b, scale_x, scale_y, work.shape) for n, (b, _) in r.items()} for r in placed]
            skin = self._colour_skin(work, boxes)
        light = estimate(work, self.light, skin, lambda: self.whites(image, faces))
        colourless = is_monochrome(work)
        # A photo without a face is measured only if the domain model sees skin in it (a cat, a plate of food, a
        # scene: no tone and no grade); it also decides which classifiers apply (routing.py).
        domain = decide_domain(image, self.domain_model()) if not faces and self.domain_model else None
        not_skin = domain is not None and domain.label not in SKIN_DOMAINS
        regions: list[Region] = []
        classifiable = []  # regions with enough skin to classify
        skin_of: dict[int, tuple[Box, np.ndarray]] = {}  # region index -> (working-copy box, its skin mask)
        for face_index, name, found in spans:
            if found is None:
                regions.append(
                    Region(face_index, name, None, 0.0, None, note="not visible in this photo (no skin of it parsed)")
                )
                continue
            box, region_mask = found
            small = _to_work(box, scale_x, scale_y, work.shape)
            if region_mask is None:  # a box: its skin is the image's skin mask inside it
                mask = _crop(skin, small)
            else:  # a parsed region: its own pixels
                mask = cv2.resize(region_mask.astype(np.uint8), small[2:], interpolation=cv2.INTER_NEAREST)
            measures = None if not_skin else colour_measures(_crop(work, small), mask, light)
            region = Region(
                face_index=face_index,
                name=name,
                box=tuple(int(v) for v in box),
                skin_fraction=round(cv2.countNonZero(mask) / mask.size, 4),
                measures=without_colour(measures) if colourless else measures,
                mask=region_mask,
            )
            skin_of[len(regions)] = (small, mask)
            if not_skin:
                region.note = f"not analysed: {domain.describe()}"
            elif name != "whole_image" and region.skin_fraction < self.min_skin:
                region.note = f"too little skin to classify (below {self.min_skin:.0%})"
            else:
                classifiable.append(len(regions))
            regions.append(region)
        self._relative_measures(regions)
        t2 = time.perf_counter()
        cams: dict[int, np.ndarray] = {}
        not_run: dict[str, str] = {}
        for classifier in self.classifiers:
            picks, note = targets(classifier, faces, regions, classifiable, domain, (w, h))
            if note:
                not_run[classifier.name] = note
            if not picks:
                continue
            logits, cam_batch = classifier.run([_crop(image, box) for _, box in picks], self.explain)
            for row, ((i, _), preds) in enumerate(zip(picks, classifier.predictions(logits), strict=True)):
                regions[i].predictions.update(preds)
                if cam_batch is not None and i not in cams:
                    cams[i] = classifier.cam_for(cam_batch, row, preds)
        for detector in self.detectors:
            picks, note = targets(detector, faces, regions, classifiable, domain, (w, h))
            if note:
                not_run[detector.name] = note
            if picks:
                found = detector.run([_crop(image, box) for _, box in picks])
                for (i, box), boxes in zip(picks, found, strict=True):
                    self._wrinkle_measures(detector, i, box, boxes, regions, skin_of, (scale_x, scale_y))
        for region in regions if self.detectors else []:  # not run there: not applicable, never 0
            if region.measures is not None:
                region.measures.setdefault("wrinkle_count", None)
                region.measures.setdefault("wrinkle_density", None)
        if not faces and not regions[0].predictions and not_run and not not_skin:  # say why it got no answer
            regions[0].note = "; ".join(f"{name}: {why}" for name, why in not_run.items())
        t3 = time.perf_counter()
        return ImageResult(
            file=file,
            status="ok",
            width=w,
            height=h,
            faces=faces,
            regions=regions,
            timings_ms={
                "decode": round(decode_ms, 2),
                "faces": round((t1 - t0) * 1e3, 2),
                "regions": round((t2 - t1) * 1e3, 2),
                "classify": round((t3 - t2) * 1e3, 2),
            },
            domain=domain,
            not_run=not_run,
            light=light,
            image=image,
            skin=skin,
            cams=cams,
        )
