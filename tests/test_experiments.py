"""Experiments (issue 27): tracked runs that train exactly what untracked ones do and resume into the same tracked
run, W&B offline, Optuna sweeps that run, fail a trial and go on, stop and continue, and `skin compare`."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
mlflow = pytest.importorskip("mlflow")
pytest.importorskip("optuna")
from shared_data import HAM  # noqa: E402
from test_train import SMALL, subset_csv, train_cmd  # noqa: E402

from skin_infer.train.tracking import mlflow_store  # noqa: E402

BIN = Path(sys.executable).parent
TIMING = ("seconds", "images_per_s")


def skin(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "skin"), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})  # fmt: skip


def log_rows(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader((run / "log.csv").open())]


def test_tracking_never_changes_what_is_trained_and_resume_continues_the_run(tmp_path):
    data = subset_csv(tmp_path / "s.csv", SMALL)
    store = tmp_path / "mlruns"
    track = ("--track", "mlflow", "--track-uri", store)
    for name, extra in (("plain", ()), ("tracked", track)):
        proc = subprocess.run(train_cmd(data, tmp_path / name, "--epochs", "2", *extra), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    weights = [(tmp_path / name / "best.safetensors").read_bytes() for name in ("plain", "tracked")]
    assert weights[0] == weights[1] and log_rows(tmp_path / "plain") == log_rows(tmp_path / "tracked")
    # one epoch, then resumed for a second (a longer schedule, so not the plain run's): the same tracked run goes on
    first = subprocess.run(train_cmd(data, tmp_path / "split", "--epochs", "1", *track), capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    run_id = json.loads((tmp_path / "split" / "tracking.json").read_text())["run_id"]
    config = json.loads((tmp_path / "split" / "config.json").read_text())
    (tmp_path / "split" / "config.json").write_text(json.dumps({**config, "epochs": 2}))
    resumed = skin("train", "--resume", tmp_path / "split", *track)
    assert resumed.returncode == 0, resumed.stderr
    client = mlflow.tracking.MlflowClient(tracking_uri=mlflow_store(store)[0])
    assert json.loads((tmp_path / "split" / "tracking.json").read_text())["run_id"] == run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params["model"] == "test_efficientnet"
    history = client.get_metric_history(run_id, "val_balanced_accuracy")
    assert [m.step for m in history] == [1, 2]  # one tracked run across the resume
    final = json.loads((tmp_path / "split" / "metrics.json").read_text())["balanced_accuracy"]
    assert run.data.metrics["final.balanced_accuracy"] == pytest.approx(final)
    artefacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.json", "metrics.json", "log.csv", "curves.png"} <= artefacts
    assert len(client.search_runs([run.info.experiment_id])) == 2  # tracked, and split (once)


def test_wandb_tracks_offline_without_network(tmp_path):
    pytest.importorskip("wandb")
    data = subset_csv(tmp_path / "s.csv", SMALL)
    proc = subprocess.run(train_cmd(data, tmp_path / "run", "--epochs", "1", "--track", "wandb"), capture_output=True,
                          text=True, env={**os.environ, "WANDB_SILENT": "true"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    state = json.loads((tmp_path / "run" / "tracking.json").read_text())
    assert state["tracker"] == "wandb" and state["where"] == "offline"
    [offline] = (tmp_path / "run" / "wandb").glob("offline-run-*")
    assert any(offline.glob("*.wandb"))  # what `wandb sync` sends later


def write_sweep(path: Path, data: Path, search: dict, **extra) -> Path:
    import yaml

    spec = {
        "train": {"data": str(HAM), "csv": str(data), "labels": ["dx"], "model": "test_efficientnet", "img_size": 48,
                  "batch_size": 16, "epochs": 2, "threads": 2},
        "search": search,
        "metric": "balanced_accuracy",
        "direction": "maximize",
        "prune_on": "val_balanced_accuracy",
        **extra,
    }  # fmt: skip
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_sweep_runs_stops_continues_and_compares(tmp_path):
    data = subset_csv(tmp_path / "s.csv", SMALL)
    search = {"lr": {"type": "loguniform", "low": 1e-4, "high": 3e-3}, "drop_rate": {"choices": [0.0, 0.3]}}
    spec = write_sweep(tmp_path / "sweep.yaml", data, search, sampler="random")
    out = tmp_path / "sweep"
    first = skin("sweep", spec, "--out", out, "--trials", 2)
    assert first.returncode == 0, first.stderr
    assert len(list(csv.DictReader((out / "trials.csv").open()))) == 2
    again = skin("sweep", spec, "--out", out, "--trials", 3)  # the same study, one more trial
    assert again.returncode == 0, again.stderr
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["number"] for r in rows] == ["0", "1", "2"] and all(r["state"] in ("COMPLETE", "PRUNED") for r in rows)
    best = json.loads((out / "best.json").read_text())
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    assert best["value"] == pytest.approx(max(float(r["balanced_accuracy"]) for r in complete))
    assert json.loads((Path(best["run_dir"]) / "metrics.json").read_text())["balanced_accuracy"] == pytest.approx(
        best["value"]
    )
    client = mlflow.tracking.MlflowClient(tracking_uri=mlflow_store(out / "mlruns")[0])
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 3  # one tracked run per trial
    table = skin("compare", out, "--markdown", "--plot", tmp_path / "curves.png")
    assert table.returncode == 0, table.stderr
    header = table.stdout.splitlines()[0]
    assert "lr" in header and "drop_rate" in header and "balanced_accuracy" in header
    assert len(table.stdout.splitlines()) == 2 + 3 and (tmp_path / "curves.png").stat().st_size > 5000


def test_a_failed_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    data = subset_csv(tmp_path / "s.csv", SMALL)
    spec = write_sweep(tmp_path / "sweep.yaml", data, {"model": {"choices": ["test_efficientnet", "no_such_net"]}},
                       sampler="grid")  # fmt: skip
    out = tmp_path / "sweep"
    proc = skin("sweep", spec, "--out", out, "--trials", 2, "--track", "none")
    assert proc.returncode == 0, proc.stderr
    rows = {r["model"]: r for r in csv.DictReader((out / "trials.csv").open())}
    assert rows["no_such_net"]["state"] == "FAIL" and "no_such_net" in rows["no_such_net"]["error"]
    assert rows["test_efficientnet"]["state"] == "COMPLETE"


def test_bad_sweep_files_are_clear_errors(tmp_path):
    data = subset_csv(tmp_path / "s.csv", SMALL)
    typo = write_sweep(
        tmp_path / "typo.yaml", data, {"learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2}}
    )
    proc = skin("sweep", typo, "--out", tmp_path / "o", "--trials", 1)
    assert proc.returncode == 2 and "typo.yaml" in proc.stderr and "learning_rate" in proc.stderr
    bad = write_sweep(tmp_path / "bad.yaml", data, {"lr": {"type": "loguniform"}})
    proc = skin("sweep", bad, "--out", tmp_path / "o", "--trials", 1)
    assert proc.returncode == 2 and "low and high" in proc.stderr
    assert not (tmp_path / "o" / "trials").exists()
    missing = skin("compare", tmp_path / "nowhere")
    assert missing.returncode != 0 and "nowhere" in missing.stderr
