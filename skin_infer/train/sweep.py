"""``skin sweep SWEEP.yaml --out DIR --trials N``: hyper-parameter search with Optuna over any trainer's options.

The YAML::

    command: train              # or train-parser, train-detector (default: train)
    train: {data: ..., csv: ..., label: ...}   # options as in the trainer's --config files
    search:
      lr: {type: loguniform, low: 1.0e-4, high: 3.0e-3}
      img_size: {choices: [160, 224]}
    metric: balanced_accuracy   # a key of the run's metrics.json (dots reach inside: val.map50)
    direction: maximize         # or minimize
    sampler: tpe                # tpe, random or grid (grid: every option given as choices)
    prune_on: val_balanced_accuracy   # optional: a log.csv column; a trial behind the median stops early

The study lives in ``DIR/study.db`` (SQLite): a second call with a larger ``--trials`` continues it. Each trial
is a run directory ``DIR/trials/NNNN`` and a tracked run (MLflow under ``DIR/mlruns`` unless told otherwise);
``DIR/trials.csv`` (one row per trial) and ``DIR/best.json`` are rewritten after every trial. A failed trial is
recorded as failed and the sweep goes on.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..runtime.files import atomic_write
from .checks import DataError
from .tracking import make_tracker, tracked_fit

SAMPLERS = ("tpe", "random", "grid")
TYPES = ("loguniform", "uniform", "int")


def trainers(command: str):
    """(config class, trainer class) of a training command."""
    if command == "train":
        from .config import TrainConfig
        from .engine import Trainer

        return TrainConfig, Trainer
    if command == "train-parser":
        from .parsing import ParseConfig, ParserTrainer

        return ParseConfig, ParserTrainer
    if command == "train-detector":
        from .detection import DetectConfig, DetectorTrainer

        return DetectConfig, DetectorTrainer
    raise ValueError(f"command {command!r} is not train, train-parser or train-detector")


@dataclass
class SweepSpec:
    train: dict[str, Any]
    search: dict[str, dict[str, Any]]
    metric: str
    direction: str = "maximize"
    sampler: str = "tpe"
    command: str = "train"
    prune_on: str | None = None
    name: str = "sweep"
    seed: int = 0

    @classmethod
    def load(cls, path: Path) -> SweepSpec:
        import yaml

        try:
            values = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise DataError(f"{path}: no such file; give a sweep YAML (train:, search:, metric:).") from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise DataError(f"{path}: not a valid YAML file ({str(exc).splitlines()[0]}).") from None
        if not isinstance(values, dict):
            raise DataError(f"{path}: a sweep is a mapping with train:, search: and metric:.")
        known = {"train", "search", "metric", "direction", "sampler", "command", "prune_on", "name", "seed"}
        unknown = sorted(set(values) - known)
        missing = [k for k in ("train", "search", "metric") if k not in values]
        if unknown or missing:
            raise DataError(f"{path}: " + "; ".join(
                ([f"unknown key(s) {', '.join(unknown)}"] if unknown else [])
                + ([f"missing {', '.join(missing)}"] if missing else [])
            ) + f" (known: {', '.join(sorted(known))}).")  # fmt: skip
        spec = cls(**values)
        spec.check(path)
        return spec

    def check(self, where: Path) -> None:
        config_class, _ = trainers(self.command)
        if self.direction not in ("maximize", "minimize"):
            raise DataError(f"{where}: direction {self.direction!r} is not maximize or minimize.")
        if self.sampler not in SAMPLERS:
            raise DataError(f"{where}: sampler {self.sampler!r} is not one of {', '.join(SAMPLERS)}.")
        if not isinstance(self.search, dict) or not self.search:
            raise DataError(f"{where}: search: must name at least one option to search.")
        options = set(config_class.__dataclass_fields__)
        for name, space in self.search.items():
            if name not in options:
                raise DataError(f"{where}: search.{name} is not a {self.command} option (known: {sorted(options)}).")
            if not isinstance(space, dict) or not ("choices" in space or space.get("type") in TYPES):
                raise DataError(f"{where}: search.{name} needs {{type: {'|'.join(TYPES)}, low, high}} or {{choices}}.")
            if "choices" not in space and not all(isinstance(space.get(k), (int, float)) for k in ("low", "high")):
                raise DataError(f"{where}: search.{name} needs numbers low and high.")
        if self.sampler == "grid" and any("choices" not in s for s in self.search.values()):
            raise DataError(f"{where}: sampler grid needs every searched option as choices: [...].")
        try:
            config_class.from_dict({**self.train, **{k: _example(s) for k, s in self.search.items()}})
        except (TypeError, ValueError) as exc:
            raise DataError(f"{where}: train: {exc}") from None


def _example(space: dict) -> Any:
    return space["choices"][0] if "choices" in space else space["low"]


def suggest(trial, name: str, space: dict) -> Any:
    if "choices" in space:
        return trial.suggest_categorical(name, space["choices"])
    if space["type"] == "int":
        return trial.suggest_int(name, int(space["low"]), int(space["high"]), step=int(space.get("step", 1)))
    return trial.suggest_float(name, float(space["low"]), float(space["high"]), log=space["type"] == "loguniform")


def metric_of(metrics: dict, key: str) -> float:
    """``key`` (dots reach into nested sections) of a run's metrics as a number."""
    value: Any = metrics
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"metric {key!r} is not in the run's metrics.json (it has {sorted(metrics)})")
        value = value[part]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"metric {key!r} is {value!r}, not a finite number")
    return float(value)


def _sampler(spec: SweepSpec):
    import optuna

    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed)
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler({k: s["choices"] for k, s in spec.search.items()}, seed=spec.seed)
    return optuna.samplers.TPESampler(seed=spec.seed)


def write_tables(study, spec: SweepSpec, out: Path) -> None:
    """``trials.csv`` (number, searched options, metric, state, seconds, run directory) and ``best.json``; a pruned
    trial's metric is its last reported epoch's."""
    import optuna

    columns = ["number", *spec.search, spec.metric, "state", "seconds", "run_dir", "error"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for t in study.trials:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else ""
        writer.writerow({
            "number": t.number, **{k: t.params.get(k, "") for k in spec.search},
            spec.metric: "" if t.value is None else t.value, "state": t.state.name,
            "seconds": seconds if seconds == "" else round(seconds, 1), "run_dir": t.user_attrs.get("run_dir", ""),
            "error": t.user_attrs.get("error", ""),
        })  # fmt: skip
    atomic_write(out / "trials.csv", buffer.getvalue())
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if done:
        best = study.best_trial
        atomic_write(out / "best.json", json.dumps({
            "number": best.number, "params": best.params, "metric": spec.metric, "value": best.value,
            "direction": spec.direction, "run_dir": best.user_attrs.get("run_dir"), "trials_complete": len(done),
        }, indent=2) + "\n")  # fmt: skip


def run_sweep(spec: SweepSpec, out: Path, trials: int, jobs: int = 1, track: str = "mlflow", track_uri=None):
    """Run trials until the study holds ``trials`` finished ones (complete, pruned or failed); returns the study."""
    import optuna
    from optuna.trial import TrialState

    out.mkdir(parents=True, exist_ok=True)
    config_class, trainer_class = trainers(spec.command)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1) if spec.prune_on else None
    study = optuna.create_study(
        study_name=spec.name, storage=f"sqlite:///{out / 'study.db'}", load_if_exists=True,
        direction=spec.direction, sampler=_sampler(spec), pruner=pruner or optuna.pruners.NopPruner(),
    )  # fmt: skip
    for t in study.trials:  # a sweep killed mid-trial left it running: it failed
        if t.state == TrialState.RUNNING:
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    finished = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) for t in study.trials)
    uri = track_uri or out / "mlruns"

    def objective(trial) -> float:
        params = {name: suggest(trial, name, space) for name, space in spec.search.items()}
        run_dir = out / "trials" / f"{trial.number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        try:
            cfg = config_class.from_dict({**spec.train, **params})
            trainer = trainer_class(cfg, run_dir)
            if spec.prune_on:

                def report(row: dict) -> None:
                    trial.report(float(row[spec.prune_on]), int(row["epoch"]))
                    if trial.should_prune():
                        raise optuna.TrialPruned()

                trainer.on_epoch = report
            result = tracked_fit(trainer, make_tracker(track, uri), {**asdict(cfg), "trial": trial.number}, False)
            return metric_of(result, spec.metric)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:500])
            raise

    study.optimize(
        objective, n_trials=max(0, trials - finished), n_jobs=jobs, catch=(Exception,),
        callbacks=[lambda s, _t: write_tables(s, spec, out)],
    )  # fmt: skip
    write_tables(study, spec, out)
    return study
