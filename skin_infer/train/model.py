"""timm classifiers: one linear layer over pooled features gives the logits of every head (concatenated)."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from safetensors.torch import load_file

from ..runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD
from .config import TrainConfig
from .hub import hub_reachable


class WeightsError(RuntimeError):
    """Initial weights cannot be had; the message says what to do instead."""


def _cached_pretrained_file(name: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    hub_id = getattr(timm.models.get_pretrained_cfg(name), "hf_hub_id", None)
    if not hub_id:
        return None
    found = try_to_load_from_cache(hub_id, "model.safetensors")
    return found if isinstance(found, str) else None


def create_model(cfg: TrainConfig, n_outputs: int) -> torch.nn.Module:
    if cfg.model not in timm.list_models() and cfg.model not in timm.list_models(pretrained=True):
        raise WeightsError(f"unknown timm model {cfg.model!r}; see timm.list_models() for names")
    kwargs = {"num_classes": n_outputs, "drop_rate": cfg.drop_rate}
    if cfg.output_stride:
        kwargs["output_stride"] = cfg.output_stride
    if cfg.pretrained:
        if hub_reachable():
            return timm.create_model(cfg.model, pretrained=True, **kwargs)
        cached = _cached_pretrained_file(cfg.model)  # offline: weights already in the Hugging Face cache still work
        if cached is None:
            raise WeightsError(
                f"--pretrained needs timm's weights for {cfg.model} from the Hugging Face Hub, which cannot be "
                "reached from here, and they are not in the local cache. Use --init-weights FILE.safetensors with a "
                "local state dict instead, or train from scratch."
            )
        return timm.create_model(cfg.model, pretrained=True, pretrained_cfg_overlay={"file": cached}, **kwargs)
    model = timm.create_model(cfg.model, **kwargs)
    if cfg.init_weights:
        load_init_weights(model, Path(cfg.init_weights))
    return model


def load_init_weights(model: torch.nn.Module, path: Path) -> None:
    """Load a safetensors state dict; tensors whose shape differs (a new classifier) keep their init."""
    if not path.is_file():
        raise WeightsError(f"--init-weights {path}: no such file")
    try:
        state = load_file(str(path))
    except Exception as exc:
        raise WeightsError(f"--init-weights {path}: not a safetensors file ({exc})") from None
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(usable) < len(own) // 2:
        raise WeightsError(
            f"--init-weights {path}: only {len(usable)} of {len(own)} tensors fit {type(model).__name__}; "
            "is it for another architecture?"
        )
    model.load_state_dict(usable, strict=False)
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    head_key = next((n for n, p in model.named_parameters() if head is not None and p is head.weight), None)
    if isinstance(head, torch.nn.Linear) and head_key not in usable:
        # A new head starts at zero: uniform predictions, and pretrained features are not hit by large early
        # gradients from random logits.
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)


def model_mean_std(model: torch.nn.Module, cfg: TrainConfig) -> tuple[list[float], list[float]]:
    data_cfg = getattr(model, "pretrained_cfg", {}) or {}
    mean = cfg.mean or list(data_cfg.get("mean", IMAGENET_MEAN))
    std = cfg.std or list(data_cfg.get("std", IMAGENET_STD))
    return [float(v) for v in mean], [float(v) for v in std]
