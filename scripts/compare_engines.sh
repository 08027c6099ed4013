#!/usr/bin/env bash
# The local and Ray engines on the same folder of N photos (the shared face and no-face photos, copied round-robin):
# wall times and whether every record is identical (timings aside). docs/scale-out.md.
#   bash scripts/compare_engines.sh [N]      (N = 2000: about 7 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SKIN_INFER_SHARED:-../shared}
N=${1:-2000}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python - "$SHARED" "$WORK/photos" "$N" <<'PY'
import shutil, sys
from pathlib import Path
shared, out, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
out.mkdir()
sources = sorted((shared / "data/faces/photos").glob("*.jpg")) + sorted((shared / "data/faces/no_face").iterdir())
for i in range(n):
    shutil.copy(sources[i % len(sources)], out / f"p{i:05d}{sources[i % len(sources)].suffix}")
PY
start=$(date +%s)
skin-infer "$WORK/photos" --threads 1 -q --out "$WORK/local.jsonl" || true
mid=$(date +%s)
skin-infer "$WORK/photos" --engine ray --workers 2 --threads 1 --out "$WORK/ray.jsonl" > "$WORK/ray.log" 2>&1 || true
end=$(date +%s)
echo "local engine $((mid - start)) s, ray (2 workers x 1 thread) $((end - mid)) s"
python - "$WORK/local.jsonl" "$WORK/ray.jsonl" <<'PY'
import json, sys
def load(path):
    records = {}
    for line in open(path):
        record = json.loads(line)
        record.pop("timings_ms", None)
        records[record["file"]] = record
    return records
a, b = load(sys.argv[1]), load(sys.argv[2])
print(f"images: local {len(a)}, ray {len(b)}; identical records: {sum(a[k] == b.get(k) for k in a)}")
PY
