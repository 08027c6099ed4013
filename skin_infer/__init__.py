"""skin-infer: skin analysis from photos with a torch-free ONNX runtime."""

__version__ = "0.1.0"
