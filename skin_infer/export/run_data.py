"""A `skin train` run as export sees it: the model with its selected weights, its images as batches, and how
far ONNX Runtime's logits are from torch's (parity) and from the labels (balanced accuracy)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..runtime.preprocess import InputSpec, preprocess
from ..train.config import TrainConfig
from ..train.data import read_records
from .bundle_writer import ExportError
from .optimize import session

VERIFY_IMAGES = 64
FP32_TOP1 = 0.995


def load_run(run_dir: Path) -> tuple[TrainConfig, nn.Module]:
    """The run's config and its selected weights in a timm model (safetensors only: no pickle)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ..train.model import WeightsError, create_model

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise ExportError(f"{run_dir}: not a run directory (no config.json); train one with `skin train`.")
    cfg = TrainConfig.load(run_dir / "config.json")
    if not cfg.heads:
        raise ExportError(f"{run_dir}/config.json: no heads recorded; the run did not finish setting up.")
    weights = run_dir / "best.safetensors"
    if not weights.is_file():
        raise ExportError(f"{run_dir}: no best.safetensors; the run stopped before its first epoch ended.")
    n_outputs = sum(len(h["labels"]) for h in cfg.heads)
    try:
        model = create_model(dataclasses.replace(cfg, pretrained=False, init_weights=None), n_outputs)
    except (WeightsError, RuntimeError, TypeError) as exc:
        raise ExportError(f"{run_dir}: cannot rebuild architecture {cfg.model!r} ({exc}).") from None
    try:
        state = load_file(str(weights))
        model.load_state_dict(state)
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise ExportError(
            f"{weights}: broken or mismatched checkpoint ({str(exc).splitlines()[0]}); re-run or resume the training."
        ) from None
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ExportError(
                f"{weights}: layer {name} holds NaN or infinite weights (the training diverged); it cannot make a "
                "bundle: train again, e.g. with a lower --lr."
            )
    return cfg, model.eval()


def image_paths(cfg: TrainConfig, source: str | None, split: str, limit: int) -> tuple[list[Path], np.ndarray]:
    """Images (and first-head targets) from the run's data split, or from a folder tree / CSV given by the user."""
    if source:
        src = Path(source)
        if src.is_dir():
            user = dataclasses.replace(cfg, data=str(src), csv=None, labels=cfg.labels[:1])
        elif src.is_file():
            user = dataclasses.replace(cfg, data=str(src.parent), csv=str(src))
        else:
            raise ExportError(f"{src}: no such folder or CSV")
        records, heads = read_records(user)
        labels = cfg.heads[0]["labels"]
        unknown = set(heads[0]["labels"]) - set(labels)
        if unknown:
            raise ExportError(f"{src}: labels {sorted(unknown)} are not the model's ({labels})")
        remap = [labels.index(name) for name in heads[0]["labels"]]
        records = records[:limit]
        return [r.path for r in records], np.array([remap[r.targets[0]] for r in records])
    from ..train.data import assign_splits

    records, _ = read_records(cfg)  # missing files: left out with a warning, or refused (train/checks.py)
    assign_splits(records, cfg)
    chosen = [r for r in records if r.split == split]
    readable = set(_readable([r.path for r in chosen[: limit * 2]]))
    chosen = [r for r in chosen if r.path in readable][:limit]
    if not chosen:
        raise ExportError(f"the run's data has no readable {split} images; give them with --calib / --eval")
    return [r.path for r in chosen], np.array([r.targets[0] for r in chosen])


def _readable(paths: list[Path]) -> list[Path]:
    """The paths that decode; the others are named in one warning (an export goes on with what is there)."""
    from ..runtime.errors import ImageError
    from ..runtime.images import read_image

    good, bad = [], []
    for path in paths:
        try:
            read_image(path)
            good.append(path)
        except ImageError as exc:
            bad.append(str(exc))
    if bad:
        from rich.console import Console

        Console(stderr=True, markup=False).print(
            f"warning: {len(bad)} image(s) cannot be read and are left out: {'; '.join(bad[:3])}",
            style="yellow",
            highlight=False,
        )
    return good


def batches(paths: list[Path], spec: InputSpec, size: int = 32):
    from ..runtime.images import read_image

    for i in range(0, len(paths), size):
        yield preprocess([read_image(p) for p in paths[i : i + size]], spec)


def onnx_logits(model_path: Path, inputs: list[np.ndarray]) -> np.ndarray:
    sess = session(model_path)
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(["logits"], {name: batch})[0] for batch in inputs]).astype(np.float32)


def parity(torch_model: nn.Module, model_path: Path, inputs: list[np.ndarray]) -> dict:
    with torch.no_grad():
        expected = np.concatenate([torch_model(torch.from_numpy(b)).numpy() for b in inputs])
    got = onnx_logits(model_path, inputs)
    if not (np.isfinite(expected).all() and np.isfinite(got).all()):
        raise ExportError(
            f"{model_path}: the model gives NaN or infinite scores on real images; it cannot make a bundle "
            "(train again, e.g. with a lower --lr)."
        )
    return {
        "images": int(len(expected)),
        "max_abs_logit_diff": float(np.abs(expected - got).max()),
        "top1_agreement": float((expected.argmax(1) == got.argmax(1)).mean()),
    }


def balanced_accuracy(logits: np.ndarray, targets: np.ndarray, n_labels: int) -> float:
    from ..train.metrics import head_metrics

    labels = [str(i) for i in range(n_labels)]
    return head_metrics(targets, logits[:, :n_labels].argmax(1), labels, False)["balanced_accuracy"]
