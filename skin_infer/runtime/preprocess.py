"""The one implementation of input preprocessing, driven by a bundle manifest's ``input`` section.

Keys: ``size`` [H, W]; ``resize`` ``shorter_side_center_crop`` (timm's eval transform: the shorter side to
``floor(size / crop_pct)``, then a centre crop) or ``stretch``; ``interpolation``; ``color`` RGB|BGR;
``scale`` (multiplies 0..255 values), ``mean`` and ``std`` (after scaling); ``layout`` NCHW|NHWC.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

INTERPOLATION = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
}
RESIZE_MODES = ("shorter_side_center_crop", "stretch")


def check_spec(spec: dict[str, Any]) -> None:
    """Raise ValueError naming the first field the runtime cannot honour."""
    if spec.get("resize", "stretch") not in RESIZE_MODES:
        raise ValueError(f"input.resize {spec.get('resize')!r} is not one of {RESIZE_MODES}")
    if spec.get("interpolation", "bilinear") not in INTERPOLATION:
        raise ValueError(f"input.interpolation {spec.get('interpolation')!r} is not one of {tuple(INTERPOLATION)}")
    if spec.get("layout", "NCHW") not in ("NCHW", "NHWC"):
        raise ValueError(f"input.layout {spec.get('layout')!r} is not NCHW or NHWC")
    if spec.get("color", "RGB") not in ("RGB", "BGR"):
        raise ValueError(f"input.color {spec.get('color')!r} is not RGB or BGR")
    size = spec.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise ValueError(f"input.size {size!r} is not [height, width]")


def resize_image(image: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    """Resize (and crop) one HxWx3 uint8 image as the spec says; the result is size[0] x size[1]."""
    out_h, out_w = spec["size"]
    interp = INTERPOLATION[spec.get("interpolation", "bilinear")]
    if spec.get("resize", "stretch") == "stretch":
        return cv2.resize(image, (out_w, out_h), interpolation=interp)
    h, w = image.shape[:2]
    target = math.floor(min(out_h, out_w) / spec.get("crop_pct", 1.0))
    scale = target / min(h, w)
    rw, rh = max(out_w, round(w * scale)), max(out_h, round(h * scale))
    resized = cv2.resize(image, (rw, rh), interpolation=interp)
    top, left = (rh - out_h) // 2, (rw - out_w) // 2
    return resized[top : top + out_h, left : left + out_w]


def preprocess(images_bgr: list[np.ndarray], spec: dict[str, Any]) -> np.ndarray:
    """A float32 batch ready for the graph, from BGR uint8 images of any size.

    Normalisation and layout run in OpenCV's blob builder, one pass in C++ (about 20x numpy's several passes):
    ``(pixel - mean * 255 / scale_to_01) * scale / std`` per channel, in the graph's colour order.
    """
    rgb = spec.get("color", "RGB") == "RGB"
    scale = spec.get("scale", 1.0 / 255.0)
    mean = np.asarray(spec.get("mean", [0.0, 0.0, 0.0]), np.float64)
    std = np.asarray(spec.get("std", [1.0, 1.0, 1.0]), np.float64)
    params = cv2.dnn.Image2BlobParams()
    params.scalefactor = (*(scale / std), 0.0)
    params.mean = (*(mean / scale), 0.0)
    params.swapRB = rgb
    params.ddepth = cv2.CV_32F
    params.size = tuple(spec["size"][::-1])
    nchw = spec.get("layout", "NCHW") == "NCHW"
    params.datalayout = cv2.dnn.DNN_LAYOUT_NCHW if nchw else cv2.dnn.DNN_LAYOUT_NHWC
    return cv2.dnn.blobFromImagesWithParams([resize_image(im, spec) for im in images_bgr], params)
