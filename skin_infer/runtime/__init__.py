"""The torch-free runtime: load bundles, find faces and skin, crop regions, classify, explain, write results.

Needs numpy, onnxruntime and OpenCV only; never imports torch, timm, transformers or onnx.
See docs/architecture.md for the modules and the path of one image through them.
"""

from .analyzer import Analyzer, analyze
from .bundle import Bundle, load_bundle, write_manifest
from .classifier import Classifier
from .downloads import pull
from .errors import BundleError, DeviceError, ImageError, SkinInferError
from .faces import Face, HaarDetector, YuNetDetector
from .finders import FINDERS, make_finder
from .images import decode_image, read_image
from .parsers import SegFormerParser
from .pipeline import Pipeline
from .results import ImageResult, Prediction, Region
from .runner import BatchSummary, run_batch
from .writers import ResultWriter

__all__ = [
    "FINDERS",
    "Analyzer",
    "BatchSummary",
    "Bundle",
    "BundleError",
    "Classifier",
    "DeviceError",
    "Face",
    "HaarDetector",
    "ImageError",
    "ImageResult",
    "Pipeline",
    "Prediction",
    "Region",
    "ResultWriter",
    "SegFormerParser",
    "SkinInferError",
    "YuNetDetector",
    "analyze",
    "decode_image",
    "load_bundle",
    "make_finder",
    "pull",
    "read_image",
    "run_batch",
    "write_manifest",
]
