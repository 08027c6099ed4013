"""Every training option in one dataclass; a run's ``config.json`` re-runs it exactly."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..runtime.preprocess import CONSTANCY

SCHEDULES = ("cosine", "restarts")
SAMPLERS = ("none", "balanced")
AUGMENTS = ("none", "light", "medium", "strong", "photo")


class RunConfig:
    """Options of a run, saved as its ``config.json`` and loaded from JSON or YAML (shared by every trainer)."""

    def save(self, path: Path) -> None:
        from ..runtime.files import atomic_write

        atomic_write(path, json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        """A JSON or YAML file of options (a run's config.json works)."""
        from .checks import DataError

        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                values = yaml.safe_load(text) or {}
            else:
                values = json.loads(text)
        except FileNotFoundError:
            raise DataError(f"{path}: no such file; give the run directory's config.json or a YAML file.") from None
        except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError and yaml.YAMLError among them
            raise DataError(f"{path}: not a valid config ({exc}); fix it, or re-create the run.") from None
        except Exception as exc:  # yaml's own errors
            raise DataError(f"{path}: not a valid config ({str(exc).splitlines()[0]}); fix it.") from None
        if not isinstance(values, dict):
            raise DataError(f"{path}: a config is a mapping of option: value; this file holds {type(values).__name__}.")
        try:
            return cls.from_dict(values)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{path}: {exc}") from None


@dataclass
class TrainConfig(RunConfig):
    data: str = ""
    csv: str | None = None  # relative to `data` unless absolute
    labels: list[str] = field(default_factory=lambda: ["label"])  # CSV columns, one head each
    ordinal: list[str] = field(default_factory=list)  # heads whose labels are ordered grades
    path_column: str = "path"
    split_column: str = "split"
    group_column: str | None = None  # e.g. lesion_id: one group never sits on both sides of a split
    skip_unlabelled: bool = False  # rows with an empty or NaN-like label are left out instead of refused
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    limit: int | None = None  # train on the first N training images
    model: str = "efficientnet_b0"
    pretrained: bool = False
    init_weights: str | None = None
    output_stride: int | None = None  # 16: ResNet with the last stage at stride 1
    drop_rate: float = 0.2
    img_size: int = 224
    crop_pct: float = 0.875
    interpolation: str = "bilinear"
    constancy: str = "none"  # colour constancy of the input (runtime/preprocess.py), in training and deployed
    mean: list[float] | None = None  # default: the model's pretrained config
    std: list[float] | None = None
    augment: str = "medium"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.02
    warmup_epochs: float = 1.0
    schedule: str = "cosine"
    restart_epochs: int = 5  # cycle length of `restarts`
    restart_decay: float = 0.5  # each restart's peak learning rate, relative to the last
    loss: str = "ce"  # a name, or a weighted sum: "cb_focal:0.8+soft_f1:0.2"
    head_losses: dict[str, str] = field(default_factory=dict)  # per-head override of `loss`
    focal_gamma: float = 2.0
    cb_beta: float = 0.999
    smoothing: float = 0.1
    ldl_sigma: float = 0.8  # width in grades of the ldl losses' target distribution
    sampler: str = "none"
    select_metric: str = "balanced_accuracy"
    patience: int = 0  # early stopping after this many epochs without improvement; 0: off
    seed: int = 0
    workers: int = 0
    threads: int = 0  # torch intra-op threads; 0: torch's default
    device: str = "auto"
    amp: bool = True  # mixed precision, on CUDA only
    heads: list[dict[str, Any]] = field(default_factory=list)  # filled from the data: name, labels, ordinal

    def __post_init__(self):
        for name, allowed in (
            ("schedule", SCHEDULES),
            ("sampler", SAMPLERS),
            ("augment", AUGMENTS),
            ("constancy", CONSTANCY),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} {getattr(self, name)!r} is not one of {', '.join(allowed)}")
