"""Hostile and careless inputs, by class (docs/security.md): none crashes a batch, exhausts memory or escapes a
bundle. Every case runs the real `skin-infer` (or the runtime) on real files; peak memory is measured where a
case could exhaust it."""

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from builders import classifier_graph, make_classifier_bundle
from onnx import numpy_helper, save_model
from shared_data import FACES

from skin_infer.runtime import Analyzer, BundleError, Classifier, ImageError, Pipeline, read_image
from skin_infer.runtime.bundle import (
    save_manifest,  # noqa: E402
    write_manifest,
)
from skin_infer.runtime.finders import NoFaces

BIN = Path(sys.executable).parent
PHOTO = FACES / "photos" / "fairface_White_aligned.jpg"
# Runs skin-infer in this process and prints its peak resident memory (MB) last, whatever the exit code.
# VmHWM, not ru_maxrss: the latter keeps the forking parent's (pytest's) peak across exec.
MEASURED = """
import sys
from skin_infer.bench.workers import peak_rss_mb
from skin_infer.cli import infer_main
try:
    infer_main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
print("exit", code, "peak_mb", int(peak_rss_mb()), file=sys.stderr)
"""


def run(*args, timeout=120, **kwargs):
    return subprocess.run(
        [str(BIN / "skin-infer"), *map(str, args)], capture_output=True, text=True, timeout=timeout, **kwargs
    )


def run_measured(*args) -> tuple[subprocess.CompletedProcess, int, int]:
    proc = subprocess.run(
        [sys.executable, "-c", MEASURED, *map(str, args)], capture_output=True, text=True, timeout=120
    )
    *_, last = proc.stderr.strip().splitlines()
    _, code, _, peak = last.split()
    return proc, int(code), int(peak)


# -- 1. decompression bombs in any format -------------------------------------------------------------------


def webp_bomb(width=16383, height=16383) -> bytes:
    """A lossless WebP header declaring width x height, followed by a little data: a few KB on disk."""
    bits = (width - 1) | ((height - 1) << 14)
    vp8l = b"\x2f" + struct.pack("<I", bits) + bytes(8000)
    chunk = b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def tiff_bomb(width=20000, height=20000) -> bytes:
    """A baseline TIFF whose one strip claims width x height 8-bit grey pixels, deflate-compressed zeros."""
    data = zlib.compress(bytes(width * 64))  # a few rows' worth, the rest of the strip is missing
    entries = [
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, 1, 8),
        (259, 3, 1, 8),  # deflate
        (262, 3, 1, 1),
        (273, 4, 1, 8 + 2 + 12 * 9 + 4),  # strip offset: right after the IFD
        (277, 3, 1, 1),
        (278, 4, 1, height),
        (279, 4, 1, len(data)),
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        ifd += struct.pack("<HHI", tag, kind, count) + (
            struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        )
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + data


def png_bomb(side=30000) -> bytes:
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = zlib.compress(bytes(side + 1) * 4)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", rows)
        + chunk(b"IEND", b"")
    )


def bmp_bomb(side=20000) -> bytes:
    header = struct.pack("<2sIHHI", b"BM", 54 + 16, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 24, 0, 16, 2835, 2835, 0, 0)
    return header + info + bytes(16)


@pytest.mark.parametrize(
    "name,data",
    [("bomb.webp", webp_bomb()), ("bomb.tif", tiff_bomb()), ("bomb.png", png_bomb()), ("bomb.bmp", bmp_bomb())],
)
def test_bombs_are_refused_from_the_header(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    assert path.stat().st_size < 20_000
    with pytest.raises(ImageError, match="above the limit of 1,000,000"):
        read_image(path, max_pixels=1_000_000)


def test_a_folder_of_bombs_stays_small_in_memory(tmp_path):
    folder = tmp_path / "bombs"
    folder.mkdir()
    for i in range(8):
        (folder / f"b{i}.webp").write_bytes(webp_bomb())
        (folder / f"t{i}.tif").write_bytes(tiff_bomb())
    shutil.copy(PHOTO, folder / "z_real.jpg")
    proc, code, peak = run_measured(folder, "--max-pixels", "1000000", "--model", "none", "--out", tmp_path / "r.jsonl")
    records = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert code == 1 and len(records) == 17 and sum(r["status"] == "ok" for r in records) == 1
    assert all("above the limit" in r["error"] for r in records if r["status"] == "error")
    print(f"\n16 bombs (16383² WebP, 20000² TIFF) + 1 photo: peak RSS {peak} MB")
    assert peak < 400, proc.stderr  # decoding one bomb alone would take 800 MB (WebP) or 400 MB (TIFF)


def test_refused_images_are_not_kept_alive(tmp_path):
    """Prefetch futures and exception contexts must not hold refused or analysed images."""
    import gc
    import weakref

    analyzer = Analyzer.from_pipeline(Pipeline(NoFaces()))
    refs = []
    real = analyzer.load

    def tracked(source):
        image = real(source)
        refs.append(weakref.ref(image))
        return image

    analyzer.load = tracked
    bad = tmp_path / "bomb.webp"
    bad.write_bytes(webp_bomb())
    for result in analyzer.stream([PHOTO, bad, PHOTO, bad]):
        result.image = result.skin = None  # the caller drops what it was given
    gc.collect()
    assert len(refs) == 2 and all(r() is None for r in refs)


# -- 2. one image never stops a batch -----------------------------------------------------------------------


def test_thin_images_tiny_images_and_long_names_do_not_stop_a_batch(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "wide.png"), np.full((1, 1100, 3), 90, np.uint8))
    cv2.imwrite(str(folder / "tall.png"), np.full((1100, 1, 3), 90, np.uint8))
    cv2.imwrite(str(folder / "dot.png"), np.full((1, 1, 3), 90, np.uint8))
    shutil.copy(PHOTO, folder / ("x" * 240 + ".jpg"))  # its overlay name is too long for the file system
    shutil.copy(PHOTO, folder / "zz_last.jpg")
    for parser in ("auto", "haar", "none"):
        out = tmp_path / f"{parser}.jsonl"
        proc = run(folder, "--parser", parser, "--save-overlays", tmp_path / "ov", "--out", out)
        records = {Path(r["file"]).name[:8]: r for r in map(json.loads, out.read_text().splitlines())}
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert {k: r["status"] for k, r in records.items()} == {
            "dot.png": "ok",
            "tall.png": "ok",
            "wide.png": "ok",
            "xxxxxxxx": "error",
            "zz_last.": "ok",
        }
        assert "overlay or mask not written" in records["xxxxxxxx"]["error"]


def test_any_failure_inside_the_pipeline_is_that_images_error():
    class Exploding:
        name, provider = "exploding", "test"

        def detect(self, image):
            if image.shape[0] == 300:
                raise RuntimeError("a finder bug")
            return [], None

    analyzer = Analyzer.from_pipeline(Pipeline(Exploding()))
    results = list(analyzer.stream([PHOTO, FACES / "photos" / "astronaut.png", PHOTO]))
    assert [r.ok for r in results] == [False, True, False]
    assert "analysis failed (RuntimeError: a finder bug)" in results[0].error


# -- 3. a bundle is a closed box ------------------------------------------------------------------------------


def _rewrite(bundle: Path, **changes) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest.update(changes)
    save_manifest(bundle, manifest)  # as a careless exporter would write it: with a digest of what it wrote


def test_bundle_paths_stay_inside(tmp_path, classifier_bundle):
    outside = tmp_path / "x"
    outside.mkdir()
    make_classifier_bundle(outside / "other")
    cases = {
        "model up and out": {"model": "../x/other/model.onnx"},
        "absolute model": {"model": str(outside / "other" / "model.onnx")},
        "files up and out": {"files": {"model.onnx": {}, "../../../etc/passwd": {"sha256": "0", "size": 1}}},
        "model as a number": {"model": 7},
    }
    for name, change in cases.items():
        bundle = shutil.copytree(classifier_bundle, tmp_path / name.replace(" ", "_"))
        _rewrite(bundle, **change)
        proc = run(PHOTO, "--model", bundle)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, (name, proc.stderr)
        assert "outside the bundle" in proc.stderr or "file name inside the bundle" in proc.stderr, proc.stderr


def test_a_symlink_out_of_the_bundle_is_refused(tmp_path, classifier_bundle):
    bundle = shutil.copytree(classifier_bundle, tmp_path / "b")
    real = tmp_path / "elsewhere.onnx"
    (bundle / "model.onnx").rename(real)
    (bundle / "model.onnx").symlink_to(real)
    with pytest.raises(BundleError, match="symlink out of the bundle"):
        Classifier(bundle, "cpu")


def test_external_data_is_never_loaded_unchecked(tmp_path):
    """A graph whose weights sit in an unlisted external-data file beside it: refused, not run."""
    bundle = make_classifier_bundle(tmp_path / "b")
    graph = classifier_graph(7)
    save_model(graph, str(bundle / "model.onnx"), save_as_external_data=True, location="weights.bin", size_threshold=0)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest.pop("files")
    write_manifest(bundle, manifest, ["model.onnx"])  # weights.bin deliberately not listed
    proc = run(PHOTO, "--model", bundle)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "external data" in proc.stderr


def test_checksummed_bytes_are_the_bytes_that_run(tmp_path, classifier_bundle):
    bundle = Classifier(shutil.copytree(classifier_bundle, tmp_path / "b"), "cpu").bundle
    verified = bundle.model_bytes
    assert verified == (tmp_path / "b" / "model.onnx").read_bytes() and bundle.model is verified


# -- 4. manifests are validated before anything runs -------------------------------------------------------


@pytest.mark.parametrize(
    "change,words",
    [
        ({"heads": "dx"}, "'heads' must be a non-empty list"),
        ({"heads": [{"name": "dx", "labels": 7}]}, "2 or more distinct labels"),
        ({"heads": [{"name": "dx", "labels": ["a", "a", "b", "c", "d", "e", "f"]}]}, "distinct labels"),
        ({"heads": [{"labels": ["a", "b"]}]}, "unique name"),
        ({"input": {"size": [32, 32], "mean": ["0.5", "0.5", "0.5"]}}, "input.mean"),
        ({"input": {"size": [32, 32], "std": [0.2, 0, 0.2]}}, "input.std"),
        ({"input": {"size": [-32, 32]}}, "input.size"),
        ({"input": {"size": [100000, 100000]}}, "input.size"),
        ({"outputs": ["logits"]}, "'outputs' must map"),
    ],
)
def test_bad_manifest_values_are_refused_at_load(tmp_path, classifier_bundle, change, words):
    bundle = shutil.copytree(classifier_bundle, tmp_path / "b")
    _rewrite(bundle, **change)
    proc = run(PHOTO, "--model", bundle)
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_a_dynamic_logits_dimension_must_match_the_labels(tmp_path):
    bundle = make_classifier_bundle(tmp_path / "b")
    save_model(classifier_graph(9, logits_dim="n"), str(bundle / "model.onnx"))
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest.pop("files")
    write_manifest(bundle, manifest, ["model.onnx"])
    with pytest.raises(
        BundleError, match=r"(9 logits|logits of shape \[1, 9\]) but the manifest's heads have 7 labels"
    ):
        Classifier(bundle, "cpu")
    # loaded lazily (as the shipped models are), it is refused on its first real input, before any answer
    lazy = Classifier(bundle, "cpu", lazy=True)
    with pytest.raises(BundleError, match=r"(9 logits|logits of shape \[2, 9\]) but the manifest's heads have 7"):
        lazy.run([np.zeros((40, 40, 3), np.uint8)] * 2)


def test_nan_scores_never_reach_a_file(tmp_path):
    """A graph that answers NaN: the image is an error row, and the file is strict JSON."""
    bundle = make_classifier_bundle(tmp_path / "b")
    graph = classifier_graph(7)
    nan = numpy_helper.from_array(np.full(7, np.nan, np.float32), "b2")
    graph.graph.initializer.remove(next(i for i in graph.graph.initializer if i.name == "b2"))
    graph.graph.initializer.append(nan)
    save_model(graph, str(bundle / "model.onnx"))
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest.pop("files")
    write_manifest(bundle, manifest, ["model.onnx"])
    out = tmp_path / "r.json"
    proc = run(PHOTO, "--model", bundle, "--parser", "none", "--out", out)
    text = out.read_text()
    assert proc.returncode == 1 and "NaN" not in text.replace("NaN or infinite", "")
    [record] = json.loads(text)
    assert record["status"] == "error" and "NaN or infinite scores" in record["error"]


# -- 5. special files and odd paths --------------------------------------------------------------------------


def test_special_files_are_error_rows_and_never_hang(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(PHOTO, folder / "a_real.jpg")
    os.mkfifo(folder / "fifo.jpg")
    (folder / "zero.jpg").symlink_to("/dev/zero")
    (folder / "loop.jpg").symlink_to("loop.jpg")
    (folder / "broken.png").symlink_to(tmp_path / "nowhere.png")
    start = time.monotonic()
    proc, code, peak = run_measured(folder, "--model", "none", "--out", tmp_path / "r.jsonl")
    records = {Path(r["file"]).name: r for r in map(json.loads, (tmp_path / "r.jsonl").read_text().splitlines())}
    assert code == 1 and time.monotonic() - start < 60
    assert records["a_real.jpg"]["status"] == "ok"
    assert "FIFO" in records["fifo.jpg"]["error"] and "character device" in records["zero.jpg"]["error"]
    assert "symbolic links" in records["loop.jpg"]["error"] and "no such file" in records["broken.png"]["error"]
    print(f"\nFIFO, /dev/zero, symlink loop, broken link: peak RSS {peak} MB")
    assert peak < 400


def test_dev_zero_given_directly_is_refused(tmp_path):
    proc, code, peak = run_measured("/dev/zero", "--model", "none")
    assert code == 1 and "character device" in proc.stderr and peak < 400


def test_oversized_file_is_refused_before_reading(tmp_path):
    big = tmp_path / "huge.jpg"
    with open(big, "wb") as fh:
        fh.write(PHOTO.read_bytes())
        fh.truncate(300 * 1024 * 1024)  # sparse: 300 MB that cost no disk
    with pytest.raises(ImageError, match="above the limit of 268,435,456"):
        read_image(big)


# -- 6. output files ---------------------------------------------------------------------------------------


def test_out_is_checked_before_the_run(tmp_path):
    (tmp_path / "x.csv").mkdir()
    proc = run(PHOTO, "--out", tmp_path / "x.csv")
    assert proc.returncode == 2 and "is a folder" in proc.stderr
    victim = tmp_path / "notes.json"
    victim.write_text('{"keep": true}')
    proc = run(victim, "--out", victim)
    assert proc.returncode == 2 and "also one of the inputs" in proc.stderr
    assert victim.read_text() == '{"keep": true}'


def test_csv_cells_cannot_run_as_formulas(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("=HYPERLINK(1).jpg", "+sum.jpg", "@cmd.jpg", "-x.jpg"):
        shutil.copy(PHOTO, folder / name)
    (folder / "=bad.jpg").write_text("not an image")
    out = tmp_path / "r.csv"
    run(folder, "--out", out, "--parser", "none", "--model", "none")
    import csv

    cells = [row[0] for row in csv.reader(out.open())][1:]
    assert {Path(c.split("/")[-1]).name for c in cells} == {
        "=HYPERLINK(1).jpg",
        "+sum.jpg",
        "@cmd.jpg",
        "-x.jpg",
        "=bad.jpg",
    }
    errors = [row["error"] for row in csv.DictReader(out.open()) if row["status"] == "error"]
    for row in csv.reader(out.open()):
        for cell in row:
            assert not cell.startswith(("=", "+", "@")) and not (cell.startswith("-") and not _number(cell))
    assert errors and all(not e.startswith("=") for e in errors)
    # the numbers stay numbers, negative ones included (ITA° below zero is not a formula)
    rows = [r for r in csv.DictReader(out.open()) if r["status"] == "ok"]
    assert rows and all(_number(r["ita_deg"]) and _number(r["redness_a"]) for r in rows if r["ita_deg"])


def _number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


# -- 7. resume ---------------------------------------------------------------------------------------------


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in sorted((FACES / "photos").glob("fairface_*.jpg")):
        shutil.copy(p, folder)
    return folder


def test_resume_recognises_the_same_files_by_any_path(tmp_path, photos):
    out = tmp_path / "r.CSV"  # an upper-case suffix is the same format
    run("photos", "--out", out, "--model", "none", cwd=tmp_path)
    for spelling in ("./photos", str(photos)):
        proc = run(spelling, "--out", out, "--model", "none", "--resume", cwd=tmp_path)
        assert proc.returncode == 0 and "5 image(s) already in" in proc.stderr and "0 image(s) analysed" in proc.stderr


def test_resume_after_a_csv_cut_mid_row_redoes_that_image(tmp_path, photos):
    out = tmp_path / "r.csv"
    run(photos, "--out", out, "--model", "none")
    whole = out.read_text()
    lines = whole.splitlines(keepends=True)
    cut_file = lines[8].split(",")[0]
    out.write_text("".join(lines[:8]) + lines[8][:20])
    proc = run(photos, "--out", out, "--model", "none", "--resume")
    # the first image is whole and kept; the one cut mid-row and the three never reached are analysed
    assert proc.returncode == 0 and "1 image(s) already in" in proc.stderr and "4 image(s) analysed" in proc.stderr
    import csv

    rows = list(csv.DictReader(out.open()))
    assert sorted(r["region"] for r in rows if r["file"] == cut_file) == sorted(
        ["forehead", "left_cheek", "right_cheek", "nose", "chin", "face_skin"]
    )
    assert len(rows) == len(whole.splitlines()) - 1


@pytest.mark.parametrize(
    "name,content,words",
    [
        ("r.json", b"\xff\xfe not utf-8", "not UTF-8"),
        ("r.json", b'{"file": "a"}', "not a list of image records"),
        ("r.jsonl", b"[1, 2]\n[3]\n", "something other than image records"),
        ("r.csv", b"a,b,c\n1,2,3\n", "other columns"),
    ],
)
def test_resume_refuses_files_it_cannot_trust(tmp_path, photos, name, content, words):
    out = tmp_path / name
    out.write_bytes(content)
    proc = run(photos, "--out", out, "--model", "none", "--resume")
    assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr
    assert out.read_bytes() == content  # nothing lost


def test_resume_refuses_results_of_another_model(tmp_path, photos, classifier_bundle):
    out = tmp_path / "r.jsonl"
    run(photos, "--out", out, "--model", classifier_bundle)
    other = make_classifier_bundle(tmp_path / "other", heads=(("acne", ("0", "1", "2", "3")),))
    proc = run(photos, "--out", out, "--model", other, "--resume")
    assert proc.returncode == 2 and "written with other models or options" in proc.stderr


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_a_stopped_run_leaves_what_it_finished(tmp_path, how):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(150):
        shutil.copy(PHOTO, folder / f"p{i:03d}.jpg")
    out = tmp_path / "r.jsonl"
    proc = subprocess.Popen(
        [str(BIN / "skin-infer"), str(folder), "--out", str(out), "--parser", "haar", "--model", "none", "-q"],
        stderr=subprocess.PIPE,
        text=True,
    )
    progress = out.with_name(".r.jsonl.partial")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not progress.is_file() or progress.read_text().count("\n") < 10):
        time.sleep(0.05)
    proc.send_signal(getattr(signal, how))
    proc.wait(timeout=60)
    if how == "SIGTERM":  # handled: the results are renamed into place, complete
        assert proc.returncode == 128 + signal.SIGTERM and out.is_file() and not progress.exists()
        done = [json.loads(line) for line in out.read_text().splitlines()]
    else:  # killed outright: the progress file holds every finished image
        assert not out.exists() and progress.is_file()
        lines = progress.read_text().splitlines()
        done = [json.loads(line) for line in lines if line.endswith("}")]  # the last one may be cut
    assert 10 <= len(done) < 150
    resumed = run(folder, "--out", out, "--parser", "haar", "--model", "none", "--resume", timeout=300)
    assert resumed.returncode == 0 and f"{len(done)} image(s) already in" in resumed.stderr
    final = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["file"] for r in final) == sorted(str(p) for p in folder.iterdir())  # each exactly once
    assert not progress.exists()
