"""Which model runs where. A classifier (or detector) bundle states its ``domain`` (``face`` photos or ``dermoscopy``
close-ups) and what it looks at (``applies_to``: the whole ``face`` crop, each skin ``region``, or the whole
``image``); the runtime runs it only there, and says why it did not run anywhere else.

Photos with a face are face photos: dermoscopy models never run on them. Photos without a detected face are
the hard case (a dermoscopy image, a cheek close-up, a cat): the domain model (a small classifier trained on
the shared data, ``models/domain-mobilenetv2``) decides between dermoscopy, face skin and other, and only a
confident dermoscopy decision lets a dermoscopy model answer. Bundles from before domains keep running on
every region, with a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np

from .results import Box, DomainDecision

if TYPE_CHECKING:
    from .classifier import Classifier
    from .frame import Frame


class Routed(Protocol):
    """What routing reads of a model (a classifier or a detector): its manifest's domain and framing."""

    name: str
    domain: str | None
    applies_to: str
    min_face_px: int
    face_margin: float | None
    needs_colour: bool


FACE_MARGIN = 0.25  # the face crop: the face box and this share of its size on each side (ACNE04 framing);
# a bundle's manifest may state its own (``face_margin``: the wrinkle detector's is its training photos' framing)
# The domain model's probability needed to call a face-less photo a class when its manifest states no threshold.
DOMAIN_CONFIDENCE = 0.5
SKIN_DOMAINS = ("dermoscopy", "face_skin")  # the domains whose photos are measured


def decide_domain(image: np.ndarray, domain_model: Classifier | None) -> DomainDecision:
    """What a photo without a face shows. Each class answers above its own threshold, from the domain model's
    manifest (measured on its val split: ``scripts/domain_thresholds.py``), in the order dermoscopy, face skin,
    other; none above its threshold is "unknown"."""
    if domain_model is None:
        return DomainDecision("unknown", None, "no domain model installed")
    logits, _ = domain_model.run([image])
    pred = next(iter(domain_model.predictions(logits)[0].values()))
    thresholds = domain_model.bundle.manifest.get("thresholds") or {}
    for label in (*SKIN_DOMAINS, "other"):
        if label in pred.probs and pred.probs[label] >= thresholds.get(label, DOMAIN_CONFIDENCE):
            return DomainDecision(label, pred.probs[label], domain_model.name)
    return DomainDecision("unknown", pred.score, f"{domain_model.name}: no class above its threshold")


def face_crop(box: Box, width: int, height: int, margin: float | None = None) -> Box:
    """The face box and ``margin`` (a share of its size, default ``FACE_MARGIN``) on each side, inside the image."""
    margin = FACE_MARGIN if margin is None else margin
    x, y, w, h = box
    x0, y0 = max(0, round(x - margin * w)), max(0, round(y - margin * h))
    x1, y1 = min(width, round(x + w * (1 + margin))), min(height, round(y + h * (1 + margin)))
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


def targets(classifier: Routed, frame: Frame) -> tuple[list[tuple[int, Box]], str | None]:
    """(region index, crop box) pairs this classifier runs on, and a note when it runs nowhere."""
    picks, note = _applies(classifier, frame)
    if picks and frame.colourless and classifier.needs_colour:  # measured: scripts/confidence_threshold.py
        return [], "not run: this photo has no colour, and this model was measured to need it"
    return picks, note


def _applies(classifier: Routed, frame: Frame) -> tuple[list[tuple[int, Box]], str | None]:
    """Where the bundle's domain, input and smallest face let it run."""
    faces, regions, classifiable, domain = frame.faces, frame.regions, frame.classifiable, frame.domain
    width, height = frame.size
    kind = classifier.domain
    if kind is None:  # a bundle from before domains: every classifiable region, as before
        return [(i, regions[i].box) for i in classifiable], None
    if faces:
        if kind != "face":
            return [], f"not run: made for {kind} images, and this is a face photo"
        if classifier.applies_to == "region":
            return [(i, regions[i].box) for i in classifiable if regions[i].name != "face_skin"], None
        picks, small = [], []
        for i, r in enumerate(regions):
            if r.name != "face_skin":
                continue
            box = faces[r.face_index].box
            if min(box[2], box[3]) < classifier.min_face_px:  # a face smaller than any it was trained on
                small.append(r.face_index)
                r.note = f"face too small for {classifier.name} ({min(box[2:])} px, below {classifier.min_face_px} px)"
                continue
            picks.append((i, face_crop(box, width, height, classifier.face_margin)))
        note = None
        if small:
            note = (f"not run on face(s) {', '.join(map(str, small))}: face too small (it grades faces of "
                    f"{classifier.min_face_px} px and more)")  # fmt: skip
        return picks, note
    if kind == "face":
        if classifier.applies_to == "face" and domain is not None and domain.label == "face_skin":
            # a face-skin close-up with no whole face: graded whole, as the model was trained (ACNE04 photos)
            return [(i, regions[i].box) for i in classifiable], None
        seen = "no face was found" if domain is None else f"no face was found and it looks like {domain.label}"
        return [], f"not analysed: {seen}, and it grades faces or face-skin close-ups"
    if domain is not None and domain.label == kind:
        return [(i, regions[i].box) for i in classifiable], None
    seen = domain.describe() if domain else "this photo was not recognised"
    return [], f"not analysed: {seen}, not {kind}"


class WeakFaces:
    """Faces a parser confirmed although the detector was unsure of them (scores from ``WEAK_FACE_SCORE`` up to
    the detector's own threshold, ``strong``). When every face of a photo is such, the domain model decides: a
    photo it takes for dermoscopy or a face-skin close-up (a lesion's ring, a cheek) is analysed without faces,
    as it was before; one it would not measure at all (black-and-white portraits of old faces, which YuNet
    scores 0.41-0.59) keeps its faces."""

    timing = "faces"

    def __init__(self, strong: float | None, domain_model: Callable[[], Classifier] | None = None):
        self.strong, self.domain_model = strong, domain_model

    def __call__(self, frame: Frame) -> None:
        if self.strong is None or not self.domain_model or not frame.faces:
            return
        if max(f.score for f in frame.faces) >= self.strong:
            return
        decision = decide_domain(frame.image, self.domain_model())
        if decision.label in SKIN_DOMAINS:
            frame.faces, frame.parsed_skin, frame.domain = [], None, decision


class DecideDomain:
    """The routing stage: what a photo without a face shows (the domain model is loaded on the first one)."""

    timing = "regions"

    def __init__(self, domain_model: Callable[[], Classifier] | None = None):
        self.domain_model = domain_model

    def __call__(self, frame: Frame) -> None:
        if not frame.faces and self.domain_model:
            frame.domain = frame.domain or decide_domain(frame.image, self.domain_model())
            frame.not_skin = frame.domain.label not in SKIN_DOMAINS


class NoteUnanswered:
    """A photo without a face that no model answered, and that is skin, says why on its region."""

    timing = "classify"

    def __call__(self, frame: Frame) -> None:
        whole = frame.regions[0]
        if not frame.faces and not whole.predictions and frame.not_run and not frame.not_skin:
            whole.note = "; ".join(f"{name}: {why}" for name, why in frame.not_run.items())
