"""Inputs beyond photo files, through the CLI as users run it: a video (one ordered record per analysed frame, a
face followed across frames, a per-person summary, resume), URLs served on 127.0.0.1, standard input, a camera
that is not there; runs saved under runs/infer/<N> without --out; thresholds that change what is stated."""

import functools
import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from shared_data import FACES

BIN = Path(sys.executable).parent
PORTRAIT = FACES / "photos" / "fairface_Latino_aligned.jpg"


def run(*args, cwd=None, stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "skin-infer"), *map(str, args)], capture_output=True, cwd=cwd, input=stdin)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """4 s at 5 fps: a real portrait moving right across a grey background."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    face = cv2.imread(str(PORTRAIT))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5, (640, 480))
    for i in range(20):
        frame = np.full((480, 640, 3), 200, np.uint8)
        frame[90:390, 40 + 10 * i : 340 + 10 * i] = face
        writer.write(frame)
    writer.release()
    return path


def test_a_video_gives_one_ordered_record_per_half_second(clip, tmp_path):
    out, summary = tmp_path / "v.jsonl", tmp_path / "people.json"
    proc = run(clip, "--every", "0.5", "--out", out, "--summary", summary, "-q")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["time_s"] for r in records] == [0.0, 0.4, 0.8, 1.2, 1.6, 2.0, 2.4, 2.8, 3.2, 3.6]  # every 2nd frame
    assert [r["frame"] for r in records] == list(range(0, 20, 2)) and {r["file"] for r in records} == {str(clip)}
    assert all(len(r["faces"]) == 1 and r["faces"][0]["track"] == 0 for r in records)  # one person, followed
    [person] = json.loads(summary.read_text())
    assert person["track"] == 0 and person["frames"] == 10 and "redness_index" in person["median"]
    # resume: the frames already written are skipped, nothing is written twice
    again = run(clip, "--every", "0.5", "--out", out, "--resume", "-q")
    assert again.returncode == 0 and len(out.read_text().splitlines()) == 10


def test_a_camera_that_is_not_there_is_an_error_row(tmp_path):
    out = tmp_path / "cam.jsonl"
    proc = run("--source", "7", "--out", out, "-q")
    assert proc.returncode == 1
    [record] = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["status"] == "error" and "cannot be opened as a video" in record["error"]


@pytest.fixture(scope="module")
def web():
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(FACES / "photos"))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_urls_are_downloaded_and_each_bad_one_is_its_own_error(web, tmp_path):
    out = tmp_path / "u.jsonl"
    proc = run(f"{web}/{PORTRAIT.name}", f"{web}/missing.jpg", "http://127.0.0.1:1/x.jpg", "--out", out, "-q")
    assert proc.returncode == 1
    records = {r["file"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert records[f"{web}/{PORTRAIT.name}"]["faces"]
    assert "answered 404" in records[f"{web}/missing.jpg"]["error"]
    assert "could not be downloaded" in records["http://127.0.0.1:1/x.jpg"]["error"]


def test_standard_input(tmp_path):
    proc = run("-", "--json", "-q", stdin=PORTRAIT.read_bytes())
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["file"] == "<stdin>" and record["faces"]


def test_several_inputs_without_out_are_kept_in_a_run_folder(tmp_path):
    photos = [FACES / "photos" / "fairface_White_aligned.jpg", PORTRAIT]
    first = run(*photos, "-q", cwd=tmp_path)
    second = run(*photos, "-q", cwd=tmp_path)
    assert first.returncode == second.returncode == 0
    assert (tmp_path / "runs/infer/1/results.csv").is_file() and (tmp_path / "runs/infer/2/results.csv").is_file()
    assert b"runs/infer/2/results.csv" in second.stderr
    named = run(*photos, "-q", "--project", tmp_path / "p", "--name", "mine", cwd=tmp_path)
    assert named.returncode == 0 and (tmp_path / "p/mine/results.csv").is_file()
    again = run(*photos, "-q", "--project", tmp_path / "p", "--name", "mine", cwd=tmp_path)
    assert again.returncode == 2 and b"--exist-ok" in again.stderr


def test_min_confidence_changes_what_is_stated():
    loose = json.loads(run(PORTRAIT, "--json", "-q").stdout)
    strict = json.loads(run(PORTRAIT, "--json", "-q", "--min-confidence", "0.99").stdout)
    grade = lambda r: next(g["predictions"]["acne"] for g in r["regions"] if "acne" in g["predictions"])  # noqa: E731
    assert not grade(loose).get("uncertain") and grade(strict)["uncertain"] is True
    no_faces = json.loads(run(PORTRAIT, "--json", "-q", "--min-face-score", "0.9999").stdout)
    assert no_faces["faces"] == []
