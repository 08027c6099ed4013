"""The `skin-infer` command end to end, as a user runs it: real processes, real files, real photos."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from shared_data import FACES, NO_FACE, PHOTOS, YUNET

BIN = Path(sys.executable).parent
YUNET_S = str(YUNET / "yunet_s_640_640.onnx")


def run(*args, cwd=None, check_code=None):
    proc = subprocess.run(
        [str(BIN / "skin-infer"), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300
    )
    if check_code is not None:
        assert proc.returncode == check_code, proc.stderr + proc.stdout
    return proc


@pytest.fixture
def mixed_folder(tmp_path):
    """Good photos beside every kind of bad file a real folder collects."""
    folder = tmp_path / "in"
    folder.mkdir()
    for photo in PHOTOS[:3]:
        shutil.copy(photo, folder)
    shutil.copy(FACES / "photos" / "astronaut.png", folder / "宇宙飛行士.png")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("not a photo")
    data = (FACES / "photos" / "coral_face.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(data[: len(data) // 2])
    (folder / "anim.gif").write_bytes(b"GIF89a" + bytes(50))
    (folder / "README.txt").write_text("ignored: not an image suffix")
    import cv2
    import numpy as np

    cv2.imwrite(str(folder / "tiny.png"), np.full((10, 10, 3), 150, np.uint8))  # a grey square: no skin in it
    return folder


def test_single_photo_prints_a_table():
    proc = run(FACES / "photos" / "grace_hopper.bmp", check_code=0)
    for word in ("forehead", "left_cheek", "right_cheek", "nose", "chin", "face_skin", "ITA"):
        assert word in proc.stdout
    assert "1 image(s) analysed, 0 failed" in proc.stderr and "faces: " in proc.stderr


def test_json_on_stdout_follows_the_schema():
    proc = run(FACES / "photos" / "astronaut.png", "--parser-model", YUNET_S, "--json", check_code=0)
    result = json.loads(proc.stdout)
    for key in ("file", "status", "error", "width", "height", "face_found", "faces", "regions"):
        assert key in result
    assert result["status"] == "ok" and result["face_found"] and result["width"] == 512
    face = result["faces"][0]
    assert set(face) - {"wrinkles", "wrinkle_score"} == {"index", "box", "score", "landmarks"}
    assert len(face["landmarks"]) == 5
    region = result["regions"][0]
    assert set(region) >= {"face_index", "name", "box", "skin_fraction", "measures", "predictions"}


def test_folder_to_csv_with_bad_files(mixed_folder, tmp_path, classifier_bundle):
    out = tmp_path / "results.csv"
    proc = run(mixed_folder, "--model", classifier_bundle, "--out", out, check_code=1)
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    header = list(rows[0])
    assert header[:14] == [
        "file",
        "frame",
        "time_s",
        "status",
        "error",
        "face_found",
        "face_index",
        "track",
        "region",
        "x",
        "y",
        "w",
        "h",
        "skin_fraction",
    ]
    assert header[-11:] == ["dx_label", "dx_score", "dx_uncertain"] + [
        f"dx_p_{c}" for c in ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
    ] + ["models_id"]
    by_file = {}
    for row in rows:
        by_file.setdefault(Path(row["file"]).name, []).append(row)
    assert set(by_file) == {p.name for p in PHOTOS[:3]} | {
        "宇宙飛行士.png",
        "empty.jpg",
        "notes.jpg",
        "cut.jpg",
        "anim.gif",
        "tiny.png",
    }
    [tiny] = by_file["tiny.png"]
    # analysed as a whole image, and measured and graded by nothing: the domain model sees no skin in it
    assert tiny["status"] == "ok" and tiny["region"] == "whole_image" and tiny["dx_label"] == ""
    assert tiny["ita_deg"] == "" and tiny["redness_a"] == ""
    errors = {name: rows[0]["error"] for name, rows in by_file.items() if rows[0]["status"] == "error"}
    assert set(errors) == {"empty.jpg", "notes.jpg", "cut.jpg", "anim.gif"}
    assert "empty" in errors["empty.jpg"] and "text file" in errors["notes.jpg"]
    assert "truncated" in errors["cut.jpg"] and "not supported" in errors["anim.gif"]
    assert all(str(mixed_folder) in e for e in errors.values())
    for name in ("宇宙飛行士.png", PHOTOS[0].name):
        assert all(r["status"] == "ok" for r in by_file[name])
        # classified exactly where there was enough skin
        assert all(bool(r["dx_label"]) == (float(r["skin_fraction"]) >= 0.25) for r in by_file[name])
    assert "4 failed" in proc.stderr and "failed:" in proc.stderr


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_json_outputs(tmp_path, suffix):
    out = tmp_path / f"results{suffix}"
    run(*PHOTOS[:2], NO_FACE[0], "--out", out, check_code=0)
    text = out.read_text(encoding="utf-8")
    records = json.loads(text) if suffix == ".json" else [json.loads(line) for line in text.splitlines()]
    assert [Path(r["file"]).name for r in records] == [PHOTOS[0].name, PHOTOS[1].name, NO_FACE[0].name]
    assert records[2]["regions"][0]["name"] == "whole_image" and not records[2]["face_found"]


def test_resume_skips_what_is_done(tmp_path):
    out = tmp_path / "r.csv"
    run(*PHOTOS[:2], "--out", out, check_code=0)
    proc = run(*PHOTOS[:4], "--out", out, "--resume", check_code=0)
    assert "2 image(s) already in" in proc.stderr and "2 image(s) analysed" in proc.stderr
    files = {row["file"] for row in csv.DictReader(out.open())}
    assert files == {str(p) for p in PHOTOS[:4]}


def test_usage_errors_exit_2(tmp_path, classifier_bundle):
    assert run("--no-such-option").returncode == 2
    assert "--resume needs --out" in run(PHOTOS[0], "--resume", check_code=2).stderr
    assert ".csv, .json, .jsonl or .parquet" in run(PHOTOS[0], "--out", tmp_path / "r.xlsx", check_code=2).stderr
    assert "no manifest.json" in run(PHOTOS[0], "--model", tmp_path, check_code=2).stderr
    assert "give at least one photo" in run(check_code=2).stderr
    assert "does not exist" in run(PHOTOS[0], "--parser", "yunet", "--parser-model", tmp_path / "no.onnx").stderr
    (tmp_path / "x.csv").write_text("")
    assert not list(tmp_path.glob(".*.tmp"))  # a refused run leaves nothing half-written


def test_empty_folder_says_so(tmp_path):
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    shutil.copy(PHOTOS[0], tmp_path / "photos" / "sub")
    assert "--recursive" in run(tmp_path / "photos", check_code=1).stderr


def test_missing_path_is_an_error_row(tmp_path):
    out = tmp_path / "r.csv"
    proc = run(PHOTOS[0], tmp_path / "nope.jpg", "--out", out, check_code=1)
    rows = list(csv.DictReader(out.open()))
    assert rows[-1]["status"] == "error" and "no such file" in rows[-1]["error"]
    assert "1 image(s) analysed, 1 failed" in proc.stderr


def test_recursive_with_symlink_loop(tmp_path):
    root = tmp_path / "tree"
    (root / "a" / "b").mkdir(parents=True)
    shutil.copy(PHOTOS[0], root / "a")
    shutil.copy(PHOTOS[1], root / "a" / "b" / "same_name.jpg")
    shutil.copy(PHOTOS[2], root / "same_name.jpg")
    (root / "a" / "b" / "loop").symlink_to(root, target_is_directory=True)
    out, overlays = tmp_path / "r.jsonl", tmp_path / "overlays"
    proc = run(root, "-r", "--out", out, "--save-overlays", overlays, check_code=0)
    assert "symlink loop" in proc.stderr
    names = sorted(Path(json.loads(line)["file"]).name for line in out.read_text().splitlines())
    assert names == sorted([PHOTOS[0].name, "same_name.jpg", "same_name.jpg"])
    assert len(list(overlays.glob("*.jpg"))) == 3  # same names in different folders do not overwrite


def test_explain_writes_heatmap_overlays(tmp_path, classifier_bundle):
    import cv2

    plain, explained = tmp_path / "plain", tmp_path / "explained"
    photo = FACES / "photos" / "fairface_Asian_aligned.jpg"
    run(photo, "--model", classifier_bundle, "--save-overlays", plain, check_code=0)
    run(photo, "--model", classifier_bundle, "--save-overlays", explained, "--explain", check_code=0)
    a = cv2.imread(str(plain / "fairface_Asian_aligned.jpg.overlay.jpg"))
    b = cv2.imread(str(explained / "fairface_Asian_aligned.jpg.overlay.jpg"))
    assert a.shape == b.shape == (300, 300, 3)
    assert abs(a.astype(int) - b.astype(int)).mean() > 5  # the heatmap changed the picture


def test_explain_without_cam_is_refused(tmp_path):
    from builders import make_classifier_bundle

    bundle = make_classifier_bundle(tmp_path / "nocam", cam=False)
    assert "no CAM output" in run(PHOTOS[0], "--model", bundle, "--explain", check_code=2).stderr


def test_ctrl_c_leaves_a_valid_file(tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(300):
        os.symlink(PHOTOS[i % len(PHOTOS)], folder / f"{i:03d}{PHOTOS[i % len(PHOTOS)].suffix}")
    out = tmp_path / "r.json"
    proc = subprocess.Popen(
        [str(BIN / "skin-infer"), str(folder), "--out", str(out), "--threads", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 60
    progress = tmp_path / ".r.json.partial"
    while time.time() < deadline and not (progress.is_file() and progress.stat().st_size > 2000):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    records = json.loads(out.read_text())
    assert 0 < len(records) < 300 and all(r["status"] == "ok" for r in records)
    assert "interrupted" in stderr and not list(tmp_path.glob(".r.json.*"))
