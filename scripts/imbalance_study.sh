#!/usr/bin/env bash
# The class-imbalance study on HAM10000 (issue 3): one architecture, one CPU budget, three recipes:
# plain cross-entropy; class-balanced focal loss; class-balanced focal loss + balanced sampler.
# The three runs go in parallel, one thread each (equal budgets), then docs/imbalance.md is written.
#   bash scripts/imbalance_study.sh [RUNS_DIR]      (about 60 minutes on a 2-core CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SKIN_INFER_SHARED:-../shared}
RUNS=${1:-runs/imbalance}
mkdir -p "$RUNS"
INIT="$RUNS/mobilenet_v2_imagenet.safetensors"
if [ ! -f "$INIT" ]; then
  # BatchNorm statistics from training images only: 20 per class, as symlinks
  CALIB="$RUNS/calib"
  mkdir -p "$CALIB"
  python - "$SHARED/data/ham10000" "$CALIB" <<'PY'
import csv, os, sys
from collections import Counter
root, calib = sys.argv[1:]
taken = Counter()
for row in csv.DictReader(open(os.path.join(root, "labels.csv"))):
    if row["split"] == "train" and taken[row["dx"]] < 20:
        taken[row["dx"]] += 1
        link = os.path.join(calib, os.path.basename(row["path"]))
        if not os.path.exists(link):
            os.symlink(os.path.abspath(os.path.join(root, row["path"])), link)
PY
  python -m skin_infer.train.import_weights \
    "$SHARED/weights/imagenet_mobilenet_v2/mobilenet_v2_1.0_224_quant.onnx" "$INIT" --calib "$CALIB" --max-images 140
fi
common=(--data "$SHARED/data/ham10000" --csv labels.csv --label dx --group-column lesion_id
        --model mobilenetv2_100 --init-weights "$INIT" --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5
        --img-size 160 --epochs 6 --batch-size 32 --lr 6e-4 --augment medium --seed 0 --threads 1)
skin train "${common[@]}" --loss ce --out "$RUNS/ce" > "$RUNS/ce.log" 2>&1 &
skin train "${common[@]}" --loss cb_focal --out "$RUNS/cb_focal" > "$RUNS/cb_focal.log" 2>&1 &
skin train "${common[@]}" --loss cb_focal --sampler balanced --out "$RUNS/cb_focal_balanced" \
  > "$RUNS/cb_focal_balanced.log" 2>&1 &
wait
python scripts/imbalance_table.py "$RUNS/ce" "$RUNS/cb_focal" "$RUNS/cb_focal_balanced" --out docs/imbalance.md
