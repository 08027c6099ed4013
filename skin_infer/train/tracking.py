"""Experiment tracking for every trainer (``--track mlflow|wandb|none``): the options as parameters, each epoch's
log row as metrics, the final metrics, and the run directory's small files (config, log, metrics, curves,
confusion matrices) as artefacts, all in one tracked run.

MLflow writes to a local store: a folder (``./mlruns`` unless ``--track-uri`` names another folder or a tracking
server's URI) holding a SQLite database and the artefacts, which ``mlflow ui --backend-store-uri
sqlite:///mlruns/mlflow.db`` browses offline (MLflow 3 retired the plain file store); W&B runs offline when its
server cannot be reached (``wandb sync`` sends it later). The tracked run's
id is kept in the run directory (``tracking.json``), so ``--resume`` continues the same tracked run. Trackers only
read what the trainer already wrote: tracking never changes what is trained.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from ..runtime.files import atomic_write

TRACKERS = ("none", "mlflow", "wandb")
STATE = "tracking.json"
ARTEFACTS = (".json", ".csv", ".png")  # weights stay in the run directory: tracking is for comparing runs
MAX_PARAM = 500  # characters of a parameter's value (MLflow's limit is higher; lists of labels need no more)


def _scalars(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numbers of a nested dict, flattened with dots (``test.balanced_accuracy``)."""
    out: dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_scalars(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def _params(config: dict[str, Any]) -> dict[str, str]:
    return {k: (v if isinstance(v, str) else json.dumps(v))[:MAX_PARAM] for k, v in config.items()}


class Tracker:
    """No tracking: what ``--track none`` gives."""

    def start(self, run_dir: Path, config: dict[str, Any], resume: bool) -> None:
        pass

    def epoch(self, row: dict[str, Any]) -> None:
        pass

    def finish(self, result: dict[str, Any], run_dir: Path) -> None:
        pass

    def fail(self) -> None:
        pass


def _saved_id(run_dir: Path, resume: bool) -> str | None:
    state = run_dir / STATE
    return json.loads(state.read_text())["run_id"] if resume and state.is_file() else None


def _save_id(run_dir: Path, kind: str, run_id: str, where: str) -> None:
    atomic_write(run_dir / STATE, json.dumps({"tracker": kind, "run_id": run_id, "where": where}, indent=2) + "\n")


def _artefacts(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.iterdir() if p.is_file() and p.suffix in ARTEFACTS and p.name != STATE)


def mlflow_store(location: str | Path | None) -> tuple[str, str | None]:
    """(tracking URI, artefact location) of ``--track-uri``: a folder (default ``./mlruns``; a ``file:`` URI is
    one) gets ``mlflow.db`` and ``artifacts/`` inside it; any other URI (a server, a database) is used as given."""
    text = str(location) if location is not None else "mlruns"
    if "://" in text and not text.startswith("file:"):
        return text, None
    folder = Path(text[len("file://") :] if text.startswith("file://") else text).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri()


class MLflowTracker(Tracker):
    """One MLflow run per run directory, through ``MlflowClient`` (safe in a sweep's parallel trials)."""

    def __init__(self, uri: str | Path | None = None, experiment: str = "skin-infer"):
        import logging

        from mlflow.tracking import MlflowClient

        logging.getLogger("alembic").setLevel(logging.WARNING)  # MLflow's store migrations: not the user's news
        self.uri, artefacts = mlflow_store(uri)
        self.client = MlflowClient(tracking_uri=self.uri)
        found = self.client.get_experiment_by_name(experiment)
        self.experiment = (
            found.experiment_id if found else self.client.create_experiment(experiment, artifact_location=artefacts)
        )
        self.run_id: str | None = None

    def start(self, run_dir: Path, config: dict[str, Any], resume: bool) -> None:
        from mlflow.entities import Param

        self.run_id = _saved_id(run_dir, resume)
        if self.run_id is None:
            run = self.client.create_run(self.experiment, run_name=run_dir.name, tags={"run_dir": str(run_dir)})
            self.run_id = run.info.run_id
            self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in _params(config).items()])
            _save_id(run_dir, "mlflow", self.run_id, self.uri)
        else:
            self.client.update_run(self.run_id, status="RUNNING")

    def epoch(self, row: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        step, stamp = int(row["epoch"]), int(time.time() * 1000)
        metrics = [Metric(k, v, stamp, step) for k, v in _scalars(row).items() if k != "epoch"]
        self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, result: dict[str, Any], run_dir: Path) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        metrics = [Metric(f"final.{k}", v, stamp, 0) for k, v in _scalars(result).items()]
        for start in range(0, len(metrics), 900):  # MLflow takes at most 1000 metrics per batch
            self.client.log_batch(self.run_id, metrics=metrics[start : start + 900])
        for path in _artefacts(run_dir):
            self.client.log_artifact(self.run_id, str(path))
        self.client.set_terminated(self.run_id, "FINISHED")

    def fail(self) -> None:
        if self.run_id:
            self.client.set_terminated(self.run_id, "FAILED")


class WandbTracker(Tracker):
    """One W&B run per run directory; offline (``wandb sync`` later) when api.wandb.ai cannot be reached."""

    def __init__(self, project: str = "skin-infer"):
        self.project, self.run = project, None

    def start(self, run_dir: Path, config: dict[str, Any], resume: bool) -> None:
        import wandb

        from .hub import reachable

        run_id = _saved_id(run_dir, resume) or secrets.token_hex(4)  # W&B's ids: [a-z0-9]
        mode = os.environ.get("WANDB_MODE") or ("online" if reachable("https://api.wandb.ai") else "offline")
        self.run = wandb.init(project=self.project, id=run_id, resume="allow", dir=str(run_dir), mode=mode,
                              name=run_dir.name, config=config)  # fmt: skip
        _save_id(run_dir, "wandb", run_id, mode)

    def epoch(self, row: dict[str, Any]) -> None:
        self.run.log({k: v for k, v in _scalars(row).items() if k != "epoch"}, step=int(row["epoch"]))

    def finish(self, result: dict[str, Any], run_dir: Path) -> None:
        self.run.summary.update({f"final.{k}": v for k, v in _scalars(result).items()})
        for path in _artefacts(run_dir):
            self.run.save(str(path), base_path=str(run_dir), policy="now")
        self.run.finish()

    def fail(self) -> None:
        if self.run is not None:
            self.run.finish(exit_code=1)


def make_tracker(kind: str, uri: str | None = None) -> Tracker:
    if kind not in TRACKERS:
        raise ValueError(f"--track {kind!r} is not one of {', '.join(TRACKERS)}")
    try:
        if kind == "mlflow":
            return MLflowTracker(uri)
        if kind == "wandb":
            return WandbTracker()
    except ImportError as exc:
        raise ImportError(f"--track {kind} needs {exc.name}: pip install 'skin-infer[track]'", name=exc.name) from None
    return Tracker()


def tracked_fit(trainer, tracker: Tracker, config: dict[str, Any], resume: bool) -> dict:
    """``trainer.fit()`` with every epoch and the result sent to ``tracker``; a failed run is marked failed."""
    tracker.start(trainer.out, config, resume)
    previous = trainer.on_epoch

    def on_epoch(row: dict) -> None:
        tracker.epoch(row)
        previous(row)

    trainer.on_epoch = on_epoch
    try:
        result = trainer.fit()
    except BaseException:
        tracker.fail()
        raise
    tracker.finish(result, trainer.out)
    return result
