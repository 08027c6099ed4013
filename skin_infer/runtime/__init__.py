"""The torch-free runtime: load bundles, find faces and skin, crop regions, classify, explain, write results.

Needs numpy, onnxruntime and OpenCV only; never imports torch, timm, transformers or onnx.
"""

from .bundle import Bundle, load_bundle, write_manifest
from .classifier import Classifier
from .errors import BundleError, DeviceError, ImageError, SkinInferError
from .faces import Face, HaarDetector, YuNetDetector
from .images import decode_image, read_image
from .models import make_finder, pull
from .parsers import SegFormerParser
from .pipeline import Analysis, Analyzer
from .results import ResultWriter

__all__ = [
    "Analysis",
    "Analyzer",
    "Bundle",
    "BundleError",
    "Classifier",
    "DeviceError",
    "Face",
    "HaarDetector",
    "ImageError",
    "ResultWriter",
    "SegFormerParser",
    "SkinInferError",
    "YuNetDetector",
    "decode_image",
    "load_bundle",
    "make_finder",
    "pull",
    "read_image",
    "write_manifest",
]
