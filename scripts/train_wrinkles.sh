#!/usr/bin/env bash
# Reproduces the shipped wrinkle detector (models/wrinkles-centernet): a CenterNet-style head on ImageNet
# MobileNetV2 (imported offline from ../shared/weights), trained on the shared wrinkle set's train split and
# selected by val mAP50, then exported (parity, int8 gate, threshold and framing measured on val) and measured
# through the product with `skin val --boxes`. About 50 minutes on 2 CPU cores.
set -euo pipefail
SHARED=${SKIN_INFER_SHARED:-../shared}
RUN=${1:-runs/wrinkles-centernet-320}
mkdir -p runs
[ -f runs/mnv2_imagenet.safetensors ] || python -m skin_infer.train.import_weights \
  "$SHARED"/weights/imagenet_mobilenet_v2/mobilenet_v2_1.0_224_quant.onnx runs/mnv2_imagenet.safetensors \
  --calib "$SHARED"/data/celebamask_mini/train/images
skin train-detector --data "$SHARED"/data/wrinkles --init-weights runs/mnv2_imagenet.safetensors \
  --size 320 --decoder-dim 64 --epochs 28 --batch-size 16 --lr 0.002 --threads 2 --out "$RUN"
skin export detector "$RUN" --out models/wrinkles-centernet --precision auto
skin export verify models/wrinkles-centernet
skin val "$SHARED"/data/wrinkles/labels.csv --boxes "$SHARED"/data/wrinkles/labels --where split=val \
  --json runs/wrinkles-val.json --threads 2
