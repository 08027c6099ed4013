#!/usr/bin/env bash
# Reproduces the shipped domain model (models/domain-mobilenetv2): what a photo without a face shows
# (dermoscopy, face skin, other), so the runtime runs each classifier only where it applies; "other" has seen
# varied negatives (scikit-image's pictures, synthetic scenes, portrait backgrounds). ~25 min, 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SKIN_INFER_SHARED:-../shared}
RUNS=${1:-runs/domain}
export PATH="$(pwd)/.venv/bin:$PATH"
mkdir -p "$RUNS"
python scripts/domain_data.py "$RUNS" --shared "$SHARED"
[ -f runs/mnv2_imagenet.safetensors ] || python -m skin_infer.train.import_weights \
  "$SHARED"/weights/imagenet_mobilenet_v2/mobilenet_v2_1.0_224_quant.onnx runs/mnv2_imagenet.safetensors \
  --calib "$SHARED"/data/celebamask_mini/train/images
skin train --data / --csv "$(pwd)/$RUNS/domain.csv" --label domain --model mobilenetv2_100 \
  --init-weights runs/mnv2_imagenet.safetensors --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 --img-size 128 \
  --epochs 5 --batch-size 32 --lr 6e-4 --augment strong --loss ce --sampler balanced --seed 0 --threads ${THREADS:-2} --out "$RUNS/run"
skin export classifier "$RUNS/run" --out models/domain-mobilenetv2 --precision int8 --domain any --input image
python scripts/domain_thresholds.py "$RUNS/domain.csv" --bundle models/domain-mobilenetv2
