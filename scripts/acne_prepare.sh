#!/usr/bin/env bash
# What the acne study and the acne sweep start from: runs/acne/acne04.csv (head `acne`, absolute paths, the fixed
# group split) and the ImageNet MobileNetV2 weights imported offline. Idempotent.
#   bash scripts/acne_prepare.sh [RUNS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SKIN_INFER_SHARED:-../shared}
RUNS=${1:-runs/acne}
mkdir -p "$RUNS"
# the head is named `acne` (labels 0-3 in grade order); paths absolute, so nothing from shared is copied
python - "$SHARED/data/acne04" "$RUNS/acne04.csv" <<'PY'
import csv, os, sys
root, out = sys.argv[1:]
with open(out, "w", newline="") as fh:
    w = csv.writer(fh)
    w.writerow(["path", "acne", "group", "split"])
    for row in csv.DictReader(open(os.path.join(root, "labels.csv"))):
        w.writerow([os.path.abspath(os.path.join(root, row["file"])), row["grade"], row["group"], row["split"]])
PY
INIT="$RUNS/mobilenet_v2_imagenet.safetensors"
if [ ! -f "$INIT" ]; then
  CALIB="$RUNS/calib"  # BatchNorm statistics from 128 training photos
  mkdir -p "$CALIB"
  python - "$RUNS/acne04.csv" "$CALIB" <<'PY'
import csv, os, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["split"] == "train"][::5][:128]
for r in rows:
    link = os.path.join(sys.argv[2], os.path.basename(r["path"]))
    if not os.path.exists(link):
        os.symlink(r["path"], link)
PY
  python -m skin_infer.train.import_weights \
    "$SHARED/weights/imagenet_mobilenet_v2/mobilenet_v2_1.0_224_quant.onnx" "$INIT" --calib "$CALIB"
fi
