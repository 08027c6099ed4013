"""Export (extra ``[export]``: torch, onnx, onnxslim, transformers): trained models to verified ONNX bundles.

``classifier`` (a `skin train` run directory), ``parser`` (a SegFormer face parser), ``optimize`` (onnxslim,
then ONNX Runtime's portable graph optimisation), ``quantize`` (int8 with an accuracy gate, fp16),
``verify`` (re-check a bundle). What they write is exactly what ``skin_infer.runtime`` loads.
"""
