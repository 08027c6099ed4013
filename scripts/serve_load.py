"""A bounded load test of `skin serve` on loopback (docs/serve.md).

    python scripts/serve_load.py [--users 4] [--seconds 30] [--workers 1] [--concurrency 1] [--queue 4]

Starts a real server on 127.0.0.1 with a fresh SQLite file, signs up N users, and has each upload shared photos
in a loop for a fixed time (a 503 waits for Retry-After). Reports throughput, p50/p95 latency of the 2xx uploads,
the error rate, and checks that every 2xx upload is in the database afterwards.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from shared_data import FACES  # noqa: E402
from test_serve import free_port, start_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--queue", type=int, default=4)
    args = parser.parse_args()
    photos = [p.read_bytes() for p in sorted((FACES / "photos").glob("*.jpg"))]
    with tempfile.TemporaryDirectory() as tmp:
        db, port = Path(tmp) / "load.sqlite3", free_port()
        base = f"http://127.0.0.1:{port}"
        extra = ["--workers", args.workers, "--concurrency", args.concurrency, "--queue", args.queue]
        server = start_server(db, port, *extra)
        latencies, codes, ids, lock = [], [], set(), threading.Lock()
        try:
            tokens = []
            for u in range(args.users):
                httpx.post(f"{base}/api/users", json={"username": f"user{u}", "password": "load test password"})
                login = httpx.post(f"{base}/api/login", json={"username": f"user{u}", "password": "load test password"})
                tokens.append({"Authorization": f"Bearer {login.json()['token']}"})
            stop = time.monotonic() + args.seconds

            def user(auth, seed):
                i = seed
                with httpx.Client(timeout=120) as client:
                    while time.monotonic() < stop:
                        start = time.perf_counter()
                        r = client.post(f"{base}/api/analyses", files={"file": ("p.jpg", photos[i % len(photos)])},
                                        headers=auth)  # fmt: skip
                        with lock:
                            codes.append(r.status_code)
                            if r.status_code == 201:
                                latencies.append(time.perf_counter() - start)
                                ids.add(r.json()["id"])
                        if r.status_code == 503:
                            time.sleep(float(r.headers.get("retry-after", 1)))
                        i += 1

            threads = [threading.Thread(target=user, args=(t, n)) for n, t in enumerate(tokens)]
            t0 = time.monotonic()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - t0
        finally:
            server.terminate()
            server.wait(timeout=60)
        with sqlite3.connect(db) as check:
            stored = {row[0] for row in check.execute("select id from analyses")}
    ok = len(latencies)
    ms = sorted(v * 1e3 for v in latencies)
    print(
        f"| {args.users} | {args.workers} x {args.concurrency} (+{args.queue} queued) | {elapsed:.0f} s | "
        f"{ok / elapsed:.2f} | {statistics.median(ms):.0f} ms | {ms[int(0.95 * (len(ms) - 1))]:.0f} ms | "
        f"{sum(c == 503 for c in codes)} / {len(codes)} | {sum(c >= 500 and c != 503 for c in codes)} | "
        f"{'all' if ids <= stored else f'{len(ids - stored)} MISSING'} ({len(ids)}) |"
    )


if __name__ == "__main__":
    main()
