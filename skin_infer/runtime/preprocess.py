"""The one implementation of input preprocessing, driven by a bundle's ``InputSpec`` (its manifest's ``input``).

``resize``: ``shorter_side_center_crop`` (timm's eval transform: the shorter side to ``floor(size / crop_pct)``,
then a centre crop), ``stretch`` or ``letterbox`` (detectors: the long side to ``size``, centred on a padded
square, ``detections.letterbox``). ``constancy``: ``shades_of_gray`` divides each channel by its Minkowski
p=6 mean (Finlayson & Trezzi 2004) after the resize, so an image's overall colour cast (a clinic's lamp and
camera) is taken out the same way in training and at run time. Training, export, the runtime and the
benchmarks all build specs here.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np

INTERPOLATION = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
}
RESIZE_MODES = ("shorter_side_center_crop", "stretch", "letterbox")
CONSTANCY = ("none", "shades_of_gray")
SHADES_OF_GRAY_P = 6  # the norm Barata et al. 2015 found best for dermoscopy
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
MAX_SIDE = 4096  # a model input larger than this is a mistake or an attack (OpenCV would allocate it)


def _floats(value: Any, key: str) -> tuple[float, float, float]:
    if not (isinstance(value, (list, tuple)) and len(value) == 3):
        raise ValueError(f"input.{key} {value!r} is not 3 numbers")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        raise ValueError(f"input.{key} {value!r} holds something that is not a finite number")
    return tuple(float(v) for v in value)


@dataclass(frozen=True)
class InputSpec:
    """How a graph wants its input: the manifest's ``input`` section, validated once, typed."""

    size: tuple[int, int]  # height, width
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)  # a manifest without mean/std asks for no normalisation
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    scale: float = 1.0 / 255.0  # multiplies 0..255 values before mean and std
    color: str = "RGB"
    layout: str = "NCHW"
    resize: str = "stretch"
    crop_pct: float = 1.0
    interpolation: str = "bilinear"
    constancy: str = "none"
    name: str | None = "input"  # the graph's input name (None: the graph's first input)

    def __post_init__(self):
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"input.resize {self.resize!r} is not one of {RESIZE_MODES}")
        if self.interpolation not in INTERPOLATION:
            raise ValueError(f"input.interpolation {self.interpolation!r} is not one of {tuple(INTERPOLATION)}")
        if self.constancy not in CONSTANCY:
            raise ValueError(f"input.constancy {self.constancy!r} is not one of {CONSTANCY}")
        if self.layout not in ("NCHW", "NHWC"):
            raise ValueError(f"input.layout {self.layout!r} is not NCHW or NHWC")
        if self.color not in ("RGB", "BGR"):
            raise ValueError(f"input.color {self.color!r} is not RGB or BGR")
        size = self.size
        if not (
            isinstance(size, (list, tuple))
            and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_SIDE for v in size)
        ):
            raise ValueError(f"input.size {size!r} is not [height, width] with sides from 1 to {MAX_SIDE}")
        object.__setattr__(self, "size", tuple(size))
        if self.resize == "letterbox" and self.size[0] != self.size[1]:
            raise ValueError(f"input.size {list(self.size)}: a letterbox input is square")
        object.__setattr__(self, "mean", _floats(self.mean, "mean"))
        object.__setattr__(self, "std", _floats(self.std, "std"))
        if min(self.std) <= 0:
            raise ValueError(f"input.std {list(self.std)} must be positive (it divides the pixels)")
        for key in ("scale", "crop_pct"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)):
                raise ValueError(f"input.{key} {value!r} is not a finite number")
        if not 0 < self.scale <= 1 or not 0.1 <= self.crop_pct <= 1:
            raise ValueError(f"input.scale {self.scale} or crop_pct {self.crop_pct} is outside (0, 1]")
        if self.name is not None and not isinstance(self.name, str):
            raise ValueError(f"input.name {self.name!r} is not a string")

    @classmethod
    def from_manifest(cls, section: Any) -> InputSpec:
        """Validate a manifest's ``input`` section; ValueError names the first field the runtime cannot honour."""
        if not isinstance(section, dict):
            raise ValueError(f"input {section!r} is not an object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ValueError(f"input has unknown field(s) {', '.join(unknown)}")
        if "size" not in section:
            raise ValueError("input.size is missing")
        return cls(**section)

    def to_manifest(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "layout": self.layout,
            "size": list(self.size),
            "color": self.color,
            "scale": self.scale,
            "mean": list(self.mean),
            "std": list(self.std),
            "resize": self.resize,
            "crop_pct": self.crop_pct,
            "interpolation": self.interpolation,
            "constancy": self.constancy,
        }

    @classmethod
    def timm_eval(
        cls, size: int, mean, std, crop_pct: float = 0.875, interpolation: str = "bilinear", constancy: str = "none"
    ) -> InputSpec:
        """timm's eval transform for a classifier: shorter side to size / crop_pct, centre crop."""
        return cls(
            (size, size),
            mean,
            std,
            resize="shorter_side_center_crop",
            crop_pct=crop_pct,
            interpolation=interpolation,
            constancy=constancy,
        )

    @classmethod
    def stretched(cls, size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD, name: str | None = "input") -> InputSpec:
        """The whole crop stretched to a square (face parsers: every pixel of the crop gets a label)."""
        return cls((size, size), mean, std, name=name)


def shades_of_gray(image: np.ndarray, p: int = SHADES_OF_GRAY_P) -> np.ndarray:
    """The image with each channel scaled so that their p-norm means are equal (their mean kept)."""
    x = image.astype(np.float32)
    norms = np.power(np.mean(np.power(x / 255.0, p), axis=(0, 1)), 1.0 / p)
    gains = norms.mean() / np.maximum(norms, 1e-6)
    return np.clip(x * gains + 0.5, 0, 255).astype(np.uint8)


def resize_image(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Resize (and crop) one HxWx3 uint8 image as the spec says, then its colour constancy; the result is
    size[0] x size[1]. Per-channel gains commute with resizing, so a second pass changes nothing."""
    resized = _resize(image, spec)
    return shades_of_gray(resized) if spec.constancy == "shades_of_gray" else resized


def _resize(image: np.ndarray, spec: InputSpec) -> np.ndarray:
    out_h, out_w = spec.size
    interp = INTERPOLATION[spec.interpolation]
    if spec.resize == "stretch":
        return cv2.resize(image, (out_w, out_h), interpolation=interp)
    if spec.resize == "letterbox":
        from .detections import letterbox

        return letterbox(image, out_h)[0]
    h, w = image.shape[:2]
    target = math.floor(min(out_h, out_w) / spec.crop_pct)
    scale = target / min(h, w)
    rw, rh = max(out_w, round(w * scale)), max(out_h, round(h * scale))
    resized = cv2.resize(image, (rw, rh), interpolation=interp)
    top, left = (rh - out_h) // 2, (rw - out_w) // 2
    return resized[top : top + out_h, left : left + out_w]


POOLED_PIXELS = 256 * 256  # a batch smaller than this is resized in the calling thread
_pool: tuple[int, ThreadPoolExecutor] | None = None  # (the process that made it, the pool)
_pool_lock = threading.Lock()


def _resize_all(images_bgr: list[np.ndarray], spec: InputSpec) -> list[np.ndarray]:
    """``resize_image`` of each image, on every core: OpenCV does not split a small resize across threads, and
    while a batch is resized nothing else runs (the model waits for it; ~19 crops a group photo, a third of a
    folder's time outside the models with a bicubic bundle). Below ``POOLED_PIXELS`` of output, handing the
    work to other threads costs more than it saves. A forked child makes its own pool (its copy has no threads)."""
    global _pool
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if len(images_bgr) < 2 or cores < 2 or len(images_bgr) * spec.size[0] * spec.size[1] < POOLED_PIXELS:
        return [resize_image(im, spec) for im in images_bgr]
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = os.getpid(), ThreadPoolExecutor(min(cores, 4), thread_name_prefix="skin-infer-resize")
        pool = _pool[1]
    return list(pool.map(lambda im: resize_image(im, spec), images_bgr))


def preprocess(images_bgr: list[np.ndarray], spec: InputSpec) -> np.ndarray:
    """A float32 batch ready for the graph, from BGR uint8 images of any size.

    Normalisation and layout run in OpenCV's blob builder, one pass in C++ (about 20x numpy's several passes):
    ``(pixel - mean * 255 / scale_to_01) * scale / std`` per channel, in the graph's colour order.
    """
    rgb = spec.color == "RGB"
    scale = spec.scale
    mean, std = np.asarray(spec.mean, np.float64), np.asarray(spec.std, np.float64)
    params = cv2.dnn.Image2BlobParams()
    params.scalefactor = (*(scale / std), 0.0)
    params.mean = (*(mean / scale), 0.0)
    params.swapRB = rgb
    params.ddepth = cv2.CV_32F
    params.size = spec.size[::-1]
    nchw = spec.layout == "NCHW"
    params.datalayout = cv2.dnn.DNN_LAYOUT_NCHW if nchw else cv2.dnn.DNN_LAYOUT_NHWC
    return cv2.dnn.blobFromImagesWithParams(_resize_all(images_bgr, spec), params)
