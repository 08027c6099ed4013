"""A classifier bundle run in ONNX Runtime: all crops of an image in one batched call, one or more heads.

The graph has one ``logits`` output (N, sum of label counts); heads take consecutive slices of it in
manifest order. An optional ``cam`` output (N, sum of label counts, h, w) holds class activation maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .bundle import Bundle, load_bundle
from .errors import BundleError
from .preprocess import preprocess
from .results import Prediction
from .session import create_session


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


def _dims_agree(graph_dim, expected: int) -> bool:
    return not isinstance(graph_dim, int) or graph_dim <= 0 or graph_dim == expected


class Classifier:
    def __init__(self, bundle: str | Path | Bundle, device: str = "auto", threads: int = 0, top_k: int = 3):
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle, kind="classifier")
        manifest, where = self.bundle.manifest, self.bundle.path
        heads, start = [], 0
        for entry in manifest.get("heads") or []:
            labels = tuple(str(label) for label in entry["labels"])
            heads.append(Head(entry["name"], labels, bool(entry.get("ordinal", False)), start))
            start += len(labels)
        if not heads:
            raise BundleError(f"{where}: the manifest lists no heads; re-export the bundle.")
        self.heads, self.top_k = heads, top_k
        self.session = create_session(self.bundle.model_path, device, threads)
        self.provider = self.session.get_providers()[0]
        self._check_graph(start)

    def _check_graph(self, n_labels: int) -> None:
        spec, outputs, where = self.bundle.input_spec, self.bundle.manifest["outputs"], self.bundle.path
        inputs = {i.name: i for i in self.session.get_inputs()}
        graph_outputs = {o.name: o for o in self.session.get_outputs()}
        self.input_name = spec.name or next(iter(inputs))
        if self.input_name not in inputs:
            raise BundleError(f"{where}: manifest input {self.input_name!r} is not in the graph ({', '.join(inputs)}).")
        shape = inputs[self.input_name].shape
        h, w = spec.size
        expected = (3, h, w) if spec.layout == "NCHW" else (h, w, 3)
        if len(shape) != 4 or not all(_dims_agree(g, e) for g, e in zip(shape[1:], expected, strict=True)):
            raise BundleError(f"{where}: the graph's input shape {shape} disagrees with the manifest's {expected}.")
        self.logits_name = outputs.get("logits")
        if self.logits_name not in graph_outputs:
            raise BundleError(f"{where}: manifest logits output {self.logits_name!r} is not in the graph.")
        if not _dims_agree(graph_outputs[self.logits_name].shape[-1], n_labels):
            raise BundleError(
                f"{where}: the graph gives {graph_outputs[self.logits_name].shape[-1]} logits but the manifest's "
                f"heads have {n_labels} labels; re-export the bundle."
            )
        self.cam_name = outputs.get("cam")
        if self.cam_name and self.cam_name not in graph_outputs:
            raise BundleError(f"{where}: manifest cam output {self.cam_name!r} is not in the graph.")

    @property
    def has_cam(self) -> bool:
        return bool(self.cam_name)

    def run(self, crops_bgr: list[np.ndarray], with_cam: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw logits (N, L) and, when asked and available, CAMs (N, L, h, w)."""
        names = [self.logits_name] + ([self.cam_name] if with_cam and self.cam_name else [])
        outputs = self.session.run(names, {self.input_name: preprocess(crops_bgr, self.bundle.input_spec)})
        return outputs[0], (outputs[1] if len(outputs) > 1 else None)

    def predictions(self, logits: np.ndarray) -> list[dict[str, Prediction]]:
        """Per crop, per head: label, score, probs, top-k and, for ordinal heads, the expected grade."""
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
                )
        return out

    def cam_for(self, cams: np.ndarray, index: int, predictions: dict[str, Prediction]) -> np.ndarray:
        """The activation map of the first head's predicted class for crop ``index``, scaled to 0..1."""
        head = self.heads[0]
        column = head.start + head.labels.index(predictions[head.name].label)
        cam = np.maximum(cams[index, column].astype(np.float32), 0)
        peak = float(cam.max())
        return cam / peak if peak > 0 else cam
