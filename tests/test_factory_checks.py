"""The model factory refuses what it cannot train or export, with a sentence naming the file (exit 2), never a
traceback, a NaN in JSON or a bundle the runtime refuses; a label swap in a manifest is caught by the runtime
and by `skin export verify`."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from shared_data import HAM  # noqa: E402

from skin_infer.runtime import BundleError, load_bundle  # noqa: E402

BIN = Path(sys.executable).parent
LABELS = list(csv.DictReader((HAM / "labels.csv").open()))
TRAIN = ["--label", "dx", "--model", "test_efficientnet", "--img-size", "32", "--batch-size", "16", "--epochs", "1",
         "--threads", "2"]  # fmt: skip


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def subset(per_class: int = 6, classes=("nv", "mel", "bcc")) -> list[dict]:
    rows, taken = [], {}
    for row in LABELS:
        key = (row["split"], row["dx"])
        if row["dx"] in classes and row["split"] in ("train", "val") and taken.get(key, 0) < per_class:
            taken[key] = taken.get(key, 0) + 1
            rows.append(dict(row))
    return rows


def skin(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "skin"), *map(str, args)], capture_output=True, text=True)


def train(csv_path: Path, out: Path, *extra) -> subprocess.CompletedProcess:
    return skin("train", "--data", HAM, "--csv", csv_path, *TRAIN, "--out", out, *extra)


def refused(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr


def test_every_file_missing_is_refused_naming_the_csv_and_paths(tmp_path):
    rows = [{**r, "path": "nowhere/" + r["path"]} for r in subset()]
    data = write_csv(tmp_path / "gone.csv", rows)
    refused(train(data, tmp_path / "run"), "gone.csv", f"{len(rows)} of {len(rows)} image file(s) are missing",
            "nowhere/")  # fmt: skip


def test_one_class_is_refused(tmp_path):
    data = write_csv(tmp_path / "one.csv", subset(classes=("nv",)))
    refused(train(data, tmp_path / "run"), "one.csv", "head 'dx' has 1 class(es)", "two or more")


def test_nan_like_labels_are_refused_unless_skipped(tmp_path):
    rows = subset()
    rows[0]["dx"], rows[1]["dx"], rows[2]["dx"] = "NaN", "nan", "None"
    data = write_csv(tmp_path / "nan.csv", rows)
    refused(train(data, tmp_path / "run"), "nan.csv", "3 row(s) have no label", "row 2 dx='NaN'", "--skip-unlabelled")
    proc = train(data, tmp_path / "run", "--skip-unlabelled")
    assert proc.returncode == 0, proc.stderr
    heads = json.loads((tmp_path / "run" / "config.json").read_text())["heads"]
    assert heads[0]["labels"] == ["bcc", "mel", "nv"]  # no "nan" class
    assert "train: bcc" in proc.stderr  # the class counts per split, before the first epoch


@pytest.fixture(scope="module")
def run_with_a_missing_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("missing")
    rows = subset(per_class=12)
    images = folder / "images"
    for row in rows:
        target = images / row["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(HAM / row["path"], target)
    data = write_csv(folder / "data.csv", rows)
    proc = skin("train", "--data", images, "--csv", data, *TRAIN, "--out", folder / "run")
    assert proc.returncode == 0, proc.stderr
    (images / rows[-1]["path"]).unlink()  # an image gone after training: export goes on with what is there
    return folder / "run"


def test_export_of_a_run_whose_image_went_missing(run_with_a_missing_file, tmp_path):
    out = tmp_path / "bundle"
    proc = skin("export", "classifier", run_with_a_missing_file, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "missing and left out" in proc.stderr and "Traceback" not in proc.stderr
    load_bundle(out)


def test_nan_weights_are_refused_at_export_naming_the_layer(run_with_a_missing_file, tmp_path):
    from safetensors.torch import load_file, save_file

    run = shutil.copytree(run_with_a_missing_file, tmp_path / "nan_run")
    state = load_file(str(run / "best.safetensors"))
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = torch.full_like(state[name], float("nan"))
    save_file(state, str(run / "best.safetensors"))
    proc = skin("export", "classifier", run, "--out", tmp_path / "b")
    assert proc.returncode == 1 and f"layer {name} holds NaN" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "b").exists()


def test_a_label_swap_in_the_manifest_is_caught(run_with_a_missing_file, tmp_path):
    out = tmp_path / "bundle"
    assert skin("export", "classifier", run_with_a_missing_file, "--out", out).returncode == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert "NaN" not in (out / "manifest.json").read_text()  # parity figures are finite JSON
    labels = manifest["heads"][0]["labels"]
    manifest["heads"][0]["labels"] = labels[::-1]
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))  # an edit by hand, digest left as it was
    with pytest.raises(BundleError, match="changed after export"):
        load_bundle(out)
    proc = skin("export", "verify", out)
    assert proc.returncode == 1 and "changed after export" in proc.stderr
    # re-digested by someone who knows the format: the source run still tells the swap
    from skin_infer.runtime.bundle import save_manifest

    save_manifest(out, manifest)
    proc = skin("export", "verify", out)
    assert proc.returncode == 1 and "are not the source run's" in proc.stderr, proc.stderr


def test_a_truncated_config_names_the_file(run_with_a_missing_file, tmp_path):
    run = shutil.copytree(run_with_a_missing_file, tmp_path / "cut")
    text = (run / "config.json").read_text()
    (run / "config.json").write_text(text[:40])
    proc = skin("train", "--resume", run)
    refused(proc, str(run / "config.json"), "not a valid config")
    proc = skin("export", "classifier", run, "--out", tmp_path / "b")
    assert proc.returncode == 2 and str(run / "config.json") in proc.stderr and "Traceback" not in proc.stderr
