"""Input size against quality and latency for a `skin train-parser` run (docs/face-parser.md).

    python scripts/parser_sizes.py RUN_DIR [--sizes 256 320 384 512] [--data ../shared/data/celebamask_mini]

For each size: mean F1 over the face parts, skin F1 and pixel accuracy on ``test/`` (logits upsampled to the
512 px label maps), and the ONNX Runtime latency of one crop (fp32, 2 threads, median of 20 after warm-up).
The run's model is fully convolutional, so it runs at any size; it was trained at its own ``size`` only.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from skin_infer.export.optimize import latency_ms
from skin_infer.export.parser import ParserGraph, load_run_parser
from skin_infer.export.torch_onnx import graph_to_onnx
from skin_infer.runtime.segmentation import confusion, parse_metrics
from skin_infer.train.parsing import LABELS, load_pair, read_pairs, to_tensor


def evaluate(model, cfg, pairs, size: int) -> dict:
    mean, std = cfg.mean_std
    matrix = np.zeros((len(LABELS), len(LABELS)), np.int64)
    with torch.inference_mode():
        for image, labels in pairs:
            small = F.interpolate(to_tensor([image], mean, std), size=(size, size), mode="bilinear", antialias=True)
            logits = F.interpolate(model(small), size=labels.shape, mode="bilinear", align_corners=False)
            pred = logits[0].argmax(0).numpy().astype(np.uint8)
            matrix += confusion(pred, np.where(labels < len(LABELS), labels, 0), len(LABELS))
    return parse_metrics(matrix, LABELS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 320, 384, 512])
    parser.add_argument("--data", type=Path, default=None, help="default: the run's data folder")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, _, cfg = load_run_parser(args.run)
    pairs = [load_pair(i, m, 512) for i, m in read_pairs((args.data or Path(cfg.data)) / "test")]
    print("| input size | test mean F1 | skin F1 | pixel accuracy | ONNX Runtime fp32 latency per face (2 threads) |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        metrics = evaluate(model, cfg, pairs, size)
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path, _, _ = graph_to_onnx(ParserGraph(model, False).eval(), size, Path(tmp), ["logits"], 17,
                                            cfg.arch, "pixel_values")  # fmt: skip
            ms = latency_ms(onnx_path, {"pixel_values": np.zeros((1, 3, size, size), np.float32)}, runs=20)
        print(
            f"| {size} | {metrics['mean_f1']:.4f} | {metrics['part_f1']['skin']:.4f} | "
            f"{metrics['pixel_accuracy']:.4f} | {ms:.1f} ms |"
        )


if __name__ == "__main__":
    main()
