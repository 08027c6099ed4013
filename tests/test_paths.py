"""Every path users run, with the shipped defaults, from the repository root: one mixed folder (face photos,
dermoscopy close-ups, a broken file) through the CLI in each output format and then ``--resume``, the Python API,
``--engine ray`` and a ``skin serve`` upload gives the same faces, regions, labels and scores; a resume leaves
every earlier record byte-identical and appends; existing outputs are refused up front."""

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from shared_data import FACES, HAM, REPO

from skin_infer import Analyzer
from skin_infer.runtime.writers import same_file_key

BIN = Path(sys.executable).parent
FORMATS = (".json", ".jsonl", ".csv")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("mixed")
    for p in sorted((FACES / "photos").glob("fairface_*.jpg"))[:3]:
        shutil.copy(p, folder)
    for cls in ("bcc", "nv"):
        shutil.copy(sorted((HAM / cls).glob("*.jpg"))[0], folder / f"derm_{cls}.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return folder


def run(*args, cwd=REPO, check_code=None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / "skin-infer"), *map(str, args)], capture_output=True, text=True, cwd=cwd)
    if check_code is not None:
        assert proc.returncode == check_code, proc.stderr
    return proc


def answers(record: dict) -> dict:
    """What must agree between paths: faces, regions, labels and scores (timings and file naming aside)."""
    return {
        "status": record["status"],
        "faces": [(f["box"], round(f["score"], 4)) for f in record["faces"]],
        "regions": [
            (r["name"], r["box"], {h: (p["label"], round(p["score"], 4)) for h, p in r["predictions"].items()})
            for r in record["regions"]
        ],
    }


def load_records(path: Path) -> dict[str, dict]:
    text = path.read_text()
    records = json.loads(text) if path.suffix == ".json" else [json.loads(line) for line in text.splitlines()]
    return {same_file_key(r["file"]): r for r in records}


@pytest.fixture(scope="module")
def reference(mixed) -> dict[str, dict]:
    """The Python API's answers, the reference for every other path."""
    analyzer = Analyzer(device="cpu")
    return {same_file_key(r.file): answers(r.to_dict()) for r in analyzer.stream(sorted(map(str, mixed.iterdir())))}


def test_the_defaults_answer_the_mixed_folder(reference, mixed):
    derm = reference[same_file_key(str(mixed / "derm_nv.jpg"))]
    face = reference[same_file_key(str(sorted(mixed.glob("fairface_*"))[0]))]
    assert reference[same_file_key(str(mixed / "broken.jpg"))]["status"] == "error"
    assert face["faces"] and any("acne" in preds for _, _, preds in face["regions"])
    assert derm["regions"][0][0] == "whole_image"


@pytest.mark.parametrize("suffix", FORMATS)
def test_cli_each_format_then_resume_appends_byte_for_byte(suffix, mixed, reference, tmp_path):
    folder = tmp_path / "photos"
    shutil.copytree(mixed, folder)
    late = folder / "zz_late.jpg"
    shutil.move(folder / sorted(p.name for p in folder.glob("fairface_*"))[-1], late)
    held = tmp_path / "held.jpg"
    shutil.move(late, held)
    out = tmp_path / f"results{suffix}"
    run(folder, "--out", out, "-q", check_code=1)  # the broken file fails, the rest goes on
    first = out.read_bytes()
    # an existing output without --resume is refused before anything runs
    refused = run(folder, "--out", out, "-q", check_code=2)
    assert "--resume" in refused.stderr and out.read_bytes() == first
    shutil.move(held, late)
    resumed = run(folder, "--out", out, "--resume", "-q", check_code=1)
    assert "resuming: 4 image(s)" in resumed.stderr, resumed.stderr  # the broken one is tried again
    again = out.read_bytes()
    if suffix == ".json":
        # the list's closing bracket moves and a comma follows the last record; every record stays as it was
        record_lines = lambda text: [line.removesuffix(",") for line in text.splitlines() if line.startswith("{")]  # noqa: E731
        old, new = record_lines(first.decode()), record_lines(again.decode())
        assert new[: len(old) - 1] == [line for line in old if "broken.jpg" not in line][: len(old) - 1]
    elif suffix == ".csv":
        ok_rows = [line for line in first.decode().splitlines() if "broken.jpg" not in line]
        assert again.decode().startswith("\r\n".join(ok_rows) + "\r\n")
        rows = list(csv.DictReader(io.StringIO(again.decode())))
        numeric = [v for r in rows for k, v in r.items() if k in ("ita_deg", "ita_deg_captured") and v]
        assert numeric and not any(v.startswith("'") for v in numeric)  # numbers are never "neutralised"
    else:
        assert again.startswith(b"".join(line + b"\n" for line in first.splitlines() if b"broken.jpg" not in line))
    if suffix != ".csv":
        got = load_records(out)
        assert len(got) == len(list(folder.iterdir()))
        for key, record in got.items():
            name = Path(key).name.replace("zz_late.jpg", "")
            want = next(v for k, v in reference.items() if name and Path(k).name == name) if name else None
            if want is not None:
                assert answers(record) == want, key
        assert answers(got[same_file_key(str(late))])["faces"]


def test_resume_after_sigterm_and_kill_9(mixed, tmp_path):
    many = tmp_path / "many"
    many.mkdir()
    sources = sorted((FACES / "photos").glob("fairface_*.jpg"))
    for i in range(30):
        shutil.copy(sources[i % len(sources)], many / f"p{i:02d}.jpg")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        out = tmp_path / f"r{sig}.jsonl"
        proc = subprocess.Popen([str(BIN / "skin-infer"), str(many), "--out", str(out), "-q", "--model", "none"],
                                cwd=REPO, stderr=subprocess.PIPE, text=True)  # fmt: skip
        partial = out.with_name(f".{out.name}.partial")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not partial.exists() or partial.read_text().count("\n") < 3):
            time.sleep(0.05)
        proc.send_signal(sig)
        proc.wait(30)
        resumed = run(many, "--out", out, "--resume", "-q", "--model", "none", check_code=0)
        assert "resuming:" in resumed.stderr
        files = [json.loads(line)["file"] for line in out.read_text().splitlines()]
        assert sorted(files) == sorted(str(p) for p in many.iterdir())  # each image exactly once


@pytest.mark.parametrize("suffix", FORMATS)
def test_resume_with_other_inputs_keeps_every_earlier_record(suffix, mixed, tmp_path):
    """A resume given other files keeps the earlier failures too: only a failure given again is tried again."""
    out = tmp_path / f"r{suffix}"
    broken, face = mixed / "broken.jpg", sorted(mixed.glob("fairface_*"))[0]
    run(broken, face, "--out", out, "-q", "--model", "none", check_code=1)
    first = out.read_text()
    run(mixed / "derm_nv.jpg", "--out", out, "--resume", "-q", "--model", "none", check_code=0)
    again = out.read_text()
    if suffix == ".json":
        first, again = (text.removesuffix("\n]\n") for text in (first, again))
    assert again.startswith(first) and len(again) > len(first)
    failed = [[line for line in text.splitlines() if "broken.jpg" in line] for text in (first, again)]
    assert len(failed[0]) == 1 and failed[1] == failed[0]


def test_resume_with_other_models_is_refused(mixed, tmp_path):
    out = tmp_path / "r.jsonl"
    run(mixed / "derm_nv.jpg", "--out", out, "-q", check_code=0)
    proc = run(mixed / "derm_nv.jpg", "--out", out, "--resume", "--model", "none", "-q", check_code=2)
    assert "other models or options" in proc.stderr


def test_from_another_folder_and_python_api_agree(mixed, reference, tmp_path):
    out = tmp_path / "r.jsonl"
    run(mixed, "--out", out, "-q", cwd=tmp_path, check_code=1)
    assert {k: answers(v) for k, v in load_records(out).items()} == reference


def test_ray_engine_from_the_repository_root(mixed, reference, tmp_path):
    pytest.importorskip("ray")
    pads = pytest.importorskip("pyarrow.dataset")
    loop = tmp_path / "photos"
    shutil.copytree(mixed, loop)
    (loop / "sub").mkdir()
    os.symlink("..", loop / "sub" / "loop")  # followed once, never 40 levels deep
    out = tmp_path / "r.parquet"
    args = ["--engine", "ray", "--workers", "2", "--threads", "1", "--batch-size", "2", "-r"]
    proc = run(loop, "--out", out, *args, check_code=1)
    assert "symlink loop" in proc.stderr, proc.stderr
    table = pads.dataset(str(out), format="parquet").to_table()
    by_file = {}
    for row in table.to_pylist():
        by_file[same_file_key(row["file"])] = answers(json.loads(row["result_json"]))
    assert len(by_file) == len(reference)
    for key, want in reference.items():
        assert by_file[same_file_key(str(loop / Path(key).name))] == want, key
    assert "acne_label" in table.schema.names and table.schema.field("ita_deg").type == "double"
    assert run(loop, "--out", out, *args, check_code=2).returncode == 2  # exists, no --resume: refused up front
    again = run(loop, "--out", out, *args, "--resume", check_code=0)  # nothing left to do: a clean exit
    assert "resuming: 6 image(s)" in again.stderr, again.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind
    jsonl = tmp_path / "r.jsonl"
    run(loop, "--out", jsonl, *args, check_code=1)
    assert {Path(k).name: answers(v) for k, v in load_records(jsonl).items()} == {
        Path(k).name: v for k, v in reference.items()
    }


def test_a_serve_upload_gives_the_same_answers(mixed, reference, tmp_path):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from skin_infer.serve.app import Settings, create_app

    with TestClient(create_app(Settings(db_url=f"sqlite:///{tmp_path / 'db.sqlite3'}"))) as client:
        assert client.post("/api/users", json={"username": "ann", "password": "long enough pw"}).status_code == 201
        token = client.post("/api/login", json={"username": "ann", "password": "long enough pw"}).json()["token"]
        for path in [p for p in sorted(mixed.iterdir()) if p.name != "broken.jpg"]:
            reply = client.post("/api/analyses", files={"file": (path.name, path.read_bytes(), "image/jpeg")},
                                headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            assert reply.status_code == 201, reply.text
            got = answers(reply.json()["result"])
            assert got == reference[same_file_key(str(path))], path.name


def test_cli_options_are_the_analysis_options():
    """Each analysis option is a skin-infer and skin serve flag with the same default: the copies cannot drift."""
    import inspect

    from skin_infer.cli.infer import infer
    from skin_infer.cli.serve import serve
    from skin_infer.runtime.options import AnalysisOptions

    for command, exempt in ((infer, set()), (serve, {"explain", "max_pixels"})):
        params = inspect.signature(command).parameters
        for name in AnalysisOptions.cli_names():
            if name in exempt:
                continue
            assert name in params, f"{command.__name__} has no --{name.replace('_', '-')}"
            default = params[name].default
            want = AnalysisOptions.default(name)
            assert default == want or (name == "model" and default is None), (command.__name__, name, default, want)


def test_a_default_that_resolves_to_nothing_is_an_error(monkeypatch, tmp_path):
    from skin_infer.runtime import defaults
    from skin_infer.runtime.errors import BundleError

    monkeypatch.setattr(defaults, "shipped_root", lambda: tmp_path)  # an install whose models/ went missing
    with pytest.raises(BundleError, match="reinstall"):
        defaults.resolve_models("default")
    assert defaults.resolve_models("none") == []


def test_shipped_models_resolve_from_a_source_tree():
    """A process importing the checkout (a Ray worker started in the clone) finds the shipped models there."""
    from skin_infer.runtime import defaults

    names = [b.name for b in defaults.resolve_models("default")]
    assert names == ["acne04-mobilenetv2", "wrinkles-centernet", "ham10000-mobilenetv2"]
    assert all(row["sha256"] for row in defaults.shipped_models())
