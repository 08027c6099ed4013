"""A classifier bundle run in ONNX Runtime: all crops of an image in one batched call, one or more heads.

The graph has one ``logits`` output (N, sum of label counts); heads take consecutive slices of it in
manifest order. An optional ``cam`` output (N, sum of label counts, h, w) holds class activation maps.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from .bundle import Bundle, load_bundle
from .errors import BundleError, SkinInferError
from .frame import crop
from .preprocess import preprocess
from .results import Prediction
from .routing import targets
from .session import BundleSession

if TYPE_CHECKING:
    from .frame import Frame


@dataclass(frozen=True)
class Head:
    name: str
    labels: tuple[str, ...]
    ordinal: bool
    start: int  # first column of this head in the logits

    @property
    def stop(self) -> int:
        return self.start + len(self.labels)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _read_heads(entries, where: Path) -> list[Head]:
    """The manifest's heads, validated: a list of {name, labels, ordinal}; a sentence for the first problem."""
    if not isinstance(entries, list) or not entries:
        raise BundleError(f"{where}: 'heads' must be a non-empty list of {{name, labels}}; re-export the bundle.")
    heads, start, names = [], 0, set()
    for i, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, dict) else None
        labels = entry.get("labels") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name or name in names:
            raise BundleError(f"{where}: head {i} needs a unique name (got {name!r}); re-export the bundle.")
        if (
            not isinstance(labels, list)
            or len(labels) < 2
            or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in labels)
            or len({str(v) for v in labels}) != len(labels)
        ):
            raise BundleError(f"{where}: head {name!r} needs a list of 2 or more distinct labels (got {labels!r}).")
        ordinal = entry.get("ordinal", False)
        if not isinstance(ordinal, bool):
            raise BundleError(f"{where}: head {name!r}: 'ordinal' must be true or false (got {ordinal!r}).")
        names.add(name)
        heads.append(Head(name, tuple(str(v) for v in labels), ordinal, start))
        start += len(labels)
    return heads


def _read_offsets(offsets, heads: list[Head], where: Path) -> np.ndarray | None:
    """The manifest's ``logit_offsets`` ({head: [one number per label]}, a calibrated decision) as one row."""
    if offsets is None:
        return None
    row = np.zeros(heads[-1].stop, np.float32)
    for head in heads:
        values = offsets.get(head.name, [0.0] * len(head.labels)) if isinstance(offsets, dict) else None
        if not (
            isinstance(values, list)
            and len(values) == len(head.labels)
            and all(isinstance(v, (int, float)) and np.isfinite(v) for v in values)
        ):
            raise BundleError(f"{where}: logit_offsets must give {len(head.labels)} finite numbers for {head.name!r}.")
        row[head.start : head.stop] = values
    return row


def _dims_agree(graph_dim, expected: int) -> bool:
    return not isinstance(graph_dim, int) or graph_dim <= 0 or graph_dim == expected


DOMAINS = ("face", "dermoscopy", "any")
APPLIES_TO = ("face", "region", "image")


class Classifier(BundleSession):
    def __init__(
        self,
        bundle: str | Path | Bundle,
        device: str = "auto",
        threads: int = 0,
        top_k: int = 3,
        min_confidence: float | None = None,
        lazy: bool = False,
    ):
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle, kind="classifier")
        manifest, where = self.bundle.manifest, self.bundle.path
        # Where the model applies (routing.py): a bundle from before domains has neither and runs everywhere.
        self.domain, self.applies_to = manifest.get("domain"), manifest.get("applies_to", "region")
        if self.domain is not None and self.domain not in DOMAINS or self.applies_to not in APPLIES_TO:
            raise BundleError(
                f"{where}: domain {self.domain!r} / applies_to {self.applies_to!r} must be one of {DOMAINS} / "
                f"{APPLIES_TO}; re-export with `skin export classifier --domain ... --input ...`."
            )
        if self.domain is None:
            warnings.warn(
                f"{where}: this bundle does not say where it applies, so it runs on every region as before; "
                "re-export it with --domain and --input.",
                stacklevel=2,
            )
        if self.domain == "any":
            self.domain = None
        # below it an answer is "uncertain" (the manifest's figure is measured on the model's val split)
        self.min_confidence = min_confidence if min_confidence is not None else manifest.get("min_confidence", 0.0)
        if not isinstance(self.min_confidence, (int, float)) or not 0 <= self.min_confidence <= 1:
            raise BundleError(f"{where}: min_confidence {self.min_confidence!r} must be a number in 0..1.")
        # the smallest face (box side, pixels) a face model answers for: below it, it was never trained
        self.min_face_px = manifest.get("min_face_px", 0)
        self.needs_colour = manifest.get("needs_colour") is True  # no answer for colourless photos
        self.face_margin = manifest.get("face_margin")  # None: routing's FACE_MARGIN
        self.tta = manifest.get("tta") or []
        if self.tta not in ([], ["hflip"]):
            raise BundleError(f"{where}: tta {self.tta!r} is not supported (known: ['hflip']).")
        heads = _read_heads(manifest.get("heads"), where)
        self.offsets = _read_offsets(manifest.get("logit_offsets"), heads, where)
        self.heads, self.top_k = heads, top_k
        self.logits_name, self.cam_name = manifest["outputs"].get("logits"), manifest["outputs"].get("cam")
        self.output_names = [self.logits_name] + ([self.cam_name] if self.cam_name else [])
        self._start(device, threads, lazy)

    def _check_graph(self, session) -> None:
        n_labels = self.heads[-1].stop
        spec, where = self.bundle.input_spec, self.bundle.path
        inputs = {i.name: i for i in session.get_inputs()}
        graph_outputs = {o.name: o for o in session.get_outputs()}
        self.input_name = spec.name or next(iter(inputs))
        if self.input_name not in inputs:
            raise BundleError(f"{where}: manifest input {self.input_name!r} is not in the graph ({', '.join(inputs)}).")
        shape = inputs[self.input_name].shape
        h, w = spec.size
        expected = (3, h, w) if spec.layout == "NCHW" else (h, w, 3)
        if len(shape) != 4 or not all(_dims_agree(g, e) for g, e in zip(shape[1:], expected, strict=True)):
            raise BundleError(f"{where}: the graph's input shape {shape} disagrees with the manifest's {expected}.")
        if self.logits_name not in graph_outputs:
            raise BundleError(f"{where}: manifest logits output {self.logits_name!r} is not in the graph.")
        if not _dims_agree(graph_outputs[self.logits_name].shape[-1], n_labels):
            raise BundleError(
                f"{where}: the graph gives {graph_outputs[self.logits_name].shape[-1]} logits but the manifest's "
                f"heads have {n_labels} labels; re-export the bundle."
            )
        if self.cam_name and self.cam_name not in graph_outputs:
            raise BundleError(f"{where}: manifest cam output {self.cam_name!r} is not in the graph.")

    def _check_outputs(self, outputs: dict[str, np.ndarray]) -> None:
        n_labels, where, logits = self.heads[-1].stop, self.bundle.path, outputs[self.logits_name]
        if logits.ndim != 2 or logits.shape[1] != n_labels:
            raise BundleError(
                f"{where}: the graph gives logits of shape {list(logits.shape)} but the manifest's heads have "
                f"{n_labels} labels; re-export the bundle."
            )
        cam = outputs.get(self.cam_name)
        if cam is not None and (cam.ndim != 4 or cam.shape[1] != n_labels):
            raise BundleError(f"{where}: the CAM output's shape {list(cam.shape)} does not fit {n_labels} labels.")

    @property
    def name(self) -> str:
        return self.bundle.name

    @property
    def has_cam(self) -> bool:
        return bool(self.cam_name)

    def run(self, crops_bgr: list[np.ndarray], with_cam: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Logits (N, L) and, when asked and available, CAMs (N, L, h, w). With the manifest's ``tta``
        (``hflip``), each crop is also run mirrored in the same batch and the heads' probabilities are averaged
        (returned as log-probabilities, so a softmax gives the average back); CAMs are the unmirrored ones."""
        names = self.output_names if with_cam else self.output_names[:1]
        batch = crops_bgr + ([cv2.flip(c, 1) for c in crops_bgr] if self.tta else [])
        outputs = self._outputs(names, preprocess(batch, self.bundle.input_spec))
        logits, cams = outputs[0], (outputs[1][: len(crops_bgr)] if len(outputs) > 1 else None)
        if self.tta:
            n = len(crops_bgr)
            mean = [
                (softmax(logits[:n, h.start : h.stop]) + softmax(logits[n:, h.start : h.stop])) / 2 for h in self.heads
            ]
            logits = np.log(np.maximum(np.concatenate(mean, axis=1), 1e-12)).astype(np.float32)
        if self.offsets is not None:
            logits = logits + self.offsets
        return logits, cams

    def predictions(self, logits: np.ndarray) -> list[dict[str, Prediction]]:
        """Per crop, per head: label, score, probs, top-k and, for ordinal heads, the expected grade."""
        if not np.isfinite(logits).all():
            raise SkinInferError(
                f"{self.bundle.path}: the model gave NaN or infinite scores for this image; nothing is reported "
                "for it (a damaged or badly exported bundle)"
            )
        out: list[dict[str, Prediction]] = [{} for _ in range(len(logits))]
        for head in self.heads:
            probs = softmax(logits[:, head.start : head.stop].astype(np.float64))
            for row, p in zip(out, probs, strict=True):
                order = np.argsort(-p)
                row[head.name] = Prediction(
                    label=head.labels[order[0]],
                    score=round(float(p[order[0]]), 4),
                    probs={label: round(float(v), 4) for label, v in zip(head.labels, p, strict=True)},
                    top_k=[(head.labels[i], round(float(p[i]), 4)) for i in order[: self.top_k]],
                    expected=round(float(np.dot(p, np.arange(len(p)))), 3) if head.ordinal else None,
                    uncertain=bool(p[order[0]] < self.min_confidence),
                )
        return out

    def cam_for(self, cams: np.ndarray, index: int, predictions: dict[str, Prediction]) -> np.ndarray:
        """The activation map of the first head's predicted class for crop ``index``, scaled to 0..1."""
        head = self.heads[0]
        column = head.start + head.labels.index(predictions[head.name].label)
        cam = np.maximum(cams[index, column].astype(np.float32), 0)
        peak = float(cam.max())
        return cam / peak if peak > 0 else cam


class Classify:
    """The classify stage: each classifier on the crops routing gives it (``routing.targets``), all of a photo's
    crops in one batch; with ``explain``, the activation map of each region's first answer."""

    timing = "classify"

    def __init__(self, classifiers: list[Classifier], explain: bool = False):
        heads = [h.name for c in classifiers for h in c.heads]
        if len(heads) != len(set(heads)):
            raise BundleError(f"two models answer under the same head name ({', '.join(heads)}); use one of them.")
        self.classifiers = classifiers
        self.explain = explain and any(c.has_cam for c in classifiers)

    def __call__(self, frame: Frame) -> None:
        for classifier in self.classifiers:
            picks, note = targets(classifier, frame)
            if note:
                frame.not_run[classifier.name] = note
            if not picks:
                continue
            logits, cam_batch = classifier.run([crop(frame.image, box) for _, box in picks], self.explain)
            for row, ((i, _), preds) in enumerate(zip(picks, classifier.predictions(logits), strict=True)):
                frame.regions[i].predictions.update(preds)
                if cam_batch is not None and i not in frame.cams:
                    frame.cams[i] = classifier.cam_for(cam_batch, row, preds)
