"""`--engine ray` on a real local Ray cluster (2 CPUs): the local engine's error rows, and a worker killed mid-run
without losing or duplicating an image (the same answers as every other path: test_paths.py)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
pads = pytest.importorskip("pyarrow.dataset")
from shared_data import FACES  # noqa: E402

from skin_infer.runtime.options import AnalysisOptions  # noqa: E402
from skin_infer.runtime.ray_engine import RayEngine  # noqa: E402
from skin_infer.runtime.runner import run_batch  # noqa: E402
from skin_infer.runtime.writers import ResultWriter  # noqa: E402

BIN = Path(sys.executable).parent
OPTIONS = AnalysisOptions(device="cpu")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for p in sorted((FACES / "photos").glob("fairface_*.jpg")) + sorted((FACES / "no_face").iterdir()):
        shutil.copy(p, folder)
    (folder / "notes.jpg").write_text("not a photo")
    (folder / "empty.png").write_bytes(b"")
    return folder


def ray_run(files, out, options=OPTIONS, workers=1, batch_size=2, resume=False):
    engine = RayEngine(options, workers=workers, batch_size=batch_size)
    from skin_infer.runtime.defaults import model_heads, run_identity

    writer = ResultWriter(out, model_heads(engine.options.model), resume, run_identity(options))
    return run_batch(engine.results([f for f in files if f not in writer.done], writer.done), writer)


def test_ray_gives_the_local_engines_error_rows(cluster, photos, tmp_path):
    files = sorted(str(p) for p in photos.iterdir())
    summary = ray_run(files, tmp_path / "ray.jsonl", workers=2)
    assert summary.images == 11 and summary.failed == 2
    rows = {json.loads(line)["file"]: json.loads(line) for line in (tmp_path / "ray.jsonl").read_text().splitlines()}
    assert "a text file" in rows[str(photos / "notes.jpg")]["error"]
    assert "empty file" in rows[str(photos / "empty.png")]["error"]


def test_a_killed_worker_loses_and_duplicates_nothing(cluster, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    sources = sorted((FACES / "photos").glob("fairface_*.jpg"))
    for i in range(120):  # enough work that a worker is still busy when it is killed
        shutil.copy(sources[i % len(sources)], folder / f"p{i:03d}.jpg")
    killed = []

    def kill_one_worker():
        started = 0.0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            found = subprocess.run(["pgrep", "-f", "ray::MapWorker"], capture_output=True, text=True).stdout.split()
            if found and not started:
                started = time.monotonic()
            elif found and time.monotonic() - started > 1.0:  # let it analyse a few batches first
                try:
                    os.kill(int(found[0]), signal.SIGKILL)
                    killed.append(found[0])
                except ProcessLookupError:  # it had just finished: take the next one
                    pass
            time.sleep(0.2)

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    out = tmp_path / "r.parquet"
    files = sorted(str(p) for p in folder.iterdir())
    ray_run(files, out, OPTIONS.replace(model="none", threads=1), workers=2)
    killer.join()
    assert killed, "no worker was found to kill"
    rows = pads.dataset(str(out), format="parquet").to_table(columns=["file", "region", "face_index"]).to_pylist()
    keys = [(r["file"], r["region"], r["face_index"]) for r in rows]
    assert len(keys) == len(set(keys)) and len({r["file"] for r in rows}) == 120
