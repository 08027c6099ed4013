#!/usr/bin/env bash
# Reproduces the shipped face parser (models/face-parser-mnv2): ImageNet MobileNetV2 (imported offline from
# ../shared/weights) under a SegFormer all-MLP decoder, trained on celebamask_mini. About an hour on 2 CPU cores.
set -euo pipefail
SHARED=${SKIN_INFER_SHARED:-../shared}
RUN=${1:-runs/parser-mnv2-256}
mkdir -p runs
python -m skin_infer.train.import_weights "$SHARED"/weights/imagenet_mobilenet_v2/mobilenet_v2_1.0_224_quant.onnx \
  runs/mnv2_imagenet.safetensors --calib "$SHARED"/data/celebamask_mini/train/images
skin train-parser --data "$SHARED"/data/celebamask_mini --arch mnv2-mlp --init-weights runs/mnv2_imagenet.safetensors \
  --size 256 --epochs 20 --batch-size 16 --lr 0.0015 --threads 2 --out "$RUN"
