"""Images per second of the local engine and of `--engine ray` with 1 and 2 workers, on the same photos in one
run (docs/scale-out.md).

    python scripts/ray_throughput.py [--images 60] [--shared ../shared]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=False, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    args = parser.parse_args()
    sources = sorted((args.shared / "data" / "faces" / "photos").glob("*.jpg"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for i in range(args.images):
            shutil.copy(sources[i % len(sources)], folder / f"p{i:04d}.jpg")
        runs = {
            "local engine (2 threads per model)": [str(BIN / "skin-infer"), str(folder), "--threads", "2", "-q",
                                                   "--out", f"{tmp}/local.jsonl"],
            "ray, 1 worker x 2 threads": [str(BIN / "skin-infer"), str(folder), "--engine", "ray", "--workers", "1",
                                          "--threads", "2", "--out", f"{tmp}/r1.parquet"],
            "ray, 2 workers x 1 thread": [str(BIN / "skin-infer"), str(folder), "--engine", "ray", "--workers", "2",
                                          "--threads", "1", "--out", f"{tmp}/r2.parquet"],
        }  # fmt: skip
        print("| engine | wall time (incl. start-up) | images/s |")
        print("|---|---|---|")
        for name, cmd in runs.items():
            seconds = timed(cmd)
            print(f"| {name} | {seconds:.1f} s | {args.images / seconds:.2f} |")


if __name__ == "__main__":
    main()
