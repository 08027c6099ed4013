"""`--engine ray` on a real local Ray cluster (2 CPUs): the same results as the local engine, the same error rows,
typed Parquet, resume, and a worker killed mid-run without losing or duplicating an image."""

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

from skin_infer.runtime.ray_engine import RayRun, run_ray  # noqa: E402

BIN = Path(sys.executable).parent
OPTIONS = {"model": "default", "parser": "auto", "device": "cpu"}


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


def records(path: Path) -> dict:
    out = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        record.pop("timings_ms", None)
        out[record["file"]] = record
    return out


def test_ray_gives_the_local_engines_results(cluster, photos, tmp_path):
    local = tmp_path / "local.jsonl"
    proc = subprocess.run(
        [str(BIN / "skin-infer"), str(photos), "--out", str(local), "-q", "--threads", "1"],  # as each actor
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1, proc.stderr  # the two bad files
    summary = run_ray(RayRun([str(photos)], tmp_path / "ray.jsonl", OPTIONS, workers=2, threads=1, batch_size=2))
    assert summary.images == 11 and summary.failed == 2
    a, b = records(local), records(tmp_path / "ray.jsonl")
    assert a.keys() == b.keys()
    for file in a:
        assert a[file] == b[file], file  # same predictions, measures and error rows, timings aside
    assert "a text file" in b[str(photos / "notes.jpg")]["error"]


def test_parquet_is_one_typed_row_per_region_with_the_json(cluster, photos, tmp_path):
    out = tmp_path / "r.parquet"
    run_ray(RayRun([str(photos)], out, OPTIONS, workers=1, threads=2, batch_size=4))
    table = pads.dataset(str(out), format="parquet").to_table()
    schema = {f.name: str(f.type) for f in table.schema}
    assert schema["ita_deg"] == "double" and schema["file"] == "string" and schema["face_found"] == "bool"
    assert {"acne_label", "acne_p_0", "dx_label", "result_json"} <= set(schema)
    rows = table.to_pylist()
    portrait = [r for r in rows if r["file"].endswith("fairface_Asian_aligned.jpg")]
    assert len(portrait) == 6 and json.loads(portrait[0]["result_json"])["faces"]
    assert len({r["file"] for r in rows}) == 11 and len(list(out.glob("*.parquet"))) >= 1
    # resume: the photos already in the dataset are skipped, a new one is added, nothing is written twice
    shutil.copy(FACES / "photos" / "astronaut.png", photos / "zz_new.png")
    try:
        again = run_ray(RayRun([str(photos)], out, OPTIONS, workers=1, threads=2, resume=True))
    finally:
        (photos / "zz_new.png").unlink()
    files = pads.dataset(str(out), format="parquet").to_table(columns=["file", "region"]).to_pylist()
    assert len(files) == len(rows) + 6 and again.images == 12


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
    run_ray(RayRun([str(folder)], out, {**OPTIONS, "model": "none"}, workers=2, threads=1, batch_size=2))
    killer.join()
    assert killed, "no worker was found to kill"
    rows = pads.dataset(str(out), format="parquet").to_table(columns=["file", "region", "face_index"]).to_pylist()
    keys = [(r["file"], r["region"], r["face_index"]) for r in rows]
    assert len(keys) == len(set(keys)) and len({r["file"] for r in rows}) == 120
