#!/usr/bin/env bash
# The acne-grader study (issue 14) on ACNE04: one architecture (MobileNetV2, ImageNet weights imported offline),
# one CPU budget per run (6 epochs, 1 thread, two runs at a time), the fixed group split; then docs/acne.md.
# Recipes: cross-entropy, class-balanced focal and the ordinal loss (masked_ls) at 224 px, each with and without the
# balanced sampler; and the ordinal loss at 320 and 384 px (acne lesions are small):
#   bash scripts/acne_study.sh [RUNS_DIR]      (about 100 minutes on a 2-core CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SKIN_INFER_SHARED:-../shared}
RUNS=${1:-runs/acne}
mkdir -p "$RUNS"
bash scripts/acne_prepare.sh "$RUNS"  # the CSV and the ImageNet MobileNetV2 weights
INIT="$RUNS/mobilenet_v2_imagenet.safetensors"
common=(--data / --csv "$(pwd)/$RUNS/acne04.csv" --label acne --ordinal acne --group-column group
        --model mobilenetv2_100 --init-weights "$INIT" --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5
        --epochs 6 --batch-size 32 --lr 6e-4 --augment photo --seed 0 --threads 1)
run() {  # name, options...
  local name=$1; shift
  [ -f "$RUNS/$name/metrics.json" ] || skin train "${common[@]}" "$@" --out "$RUNS/$name" > "$RUNS/$name.log" 2>&1
}
run masked_ls_224 --loss masked_ls --img-size 224 & run ce_224 --loss ce --img-size 224 & wait
run cb_focal_224 --loss cb_focal --img-size 224 & run masked_ls_balanced_224 --loss masked_ls --sampler balanced --img-size 224 & wait
run ce_balanced_224 --loss ce --sampler balanced --img-size 224 &
run cb_focal_balanced_224 --loss cb_focal --sampler balanced --img-size 224 & wait
run cb_ldl_224 --loss cb_ldl --img-size 224 &  # label-distribution learning (issue 21; docs/acne.md)
wait
run cb_focal_224_e12 --loss cb_focal --img-size 224 --epochs 12 --threads 2  # the longer schedule (docs/acne.md)
run cb_focal_224_s1 --loss cb_focal --img-size 224 --seed 1  # seed spread of the shipped recipe (docs/acne.md)
run cb_focal_224_e12_s1 --loss cb_focal --img-size 224 --epochs 12 --threads 2 --seed 1
run masked_ls_320 --loss masked_ls --img-size 320 --threads 2  # alone: both cores
run masked_ls_384 --loss masked_ls --img-size 384 --threads 2
python scripts/acne_table.py "$RUNS"/*_224 "$RUNS"/*_320 "$RUNS"/*_384 --out docs/acne.md
