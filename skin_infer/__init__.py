"""skin-infer: skin analysis from photos with a torch-free ONNX runtime.

from skin_infer import analyze
result = analyze("photo.jpg")
"""

__version__ = "0.1.0"

_PUBLIC = {
    "analyze": "analyzer",
    "Analyzer": "analyzer",
    "ImageResult": "results",
    "Region": "results",
    "Prediction": "results",
    "Face": "faces",
    "SkinInferError": "errors",
    "ImageError": "errors",
    "BundleError": "errors",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    # Lazy: `skin train --help` and other commands must not pay for loading ONNX Runtime and OpenCV.
    if name in _PUBLIC:
        from importlib import import_module

        return getattr(import_module(f".runtime.{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'skin_infer' has no attribute {name!r}")
