"""Losses for imbalanced and ordinal labels. Each takes logits (N, C) and integer targets (N,).

- ``ce``: cross-entropy; ``ls``: with label smoothing (``smoothing``).
- ``focal``: softmax focal loss, ``-(1 - p_t)^gamma * log p_t`` (Lin et al. 2017).
- ``cb_ce`` / ``cb_focal``: class-balanced by the effective number of samples,
  ``w_c = (1 - beta) / (1 - beta^n_c)`` normalised to sum to C (Cui et al. 2019); the per-sample loss is
  weighted by its class's ``w`` and averaged over the batch. Counts are the training set's original ones,
  also when a balanced sampler is used.
- ``masked_ls``: label smoothing for ordinal grades: the smoothing mass goes to the adjacent grades only.
- ``ldl`` / ``cb_ldl``: label-distribution learning for ordinal grades (Geng 2016; ACNE04's own method, Wu et al.
  2019): the target is a Gaussian over the grades centred on the true one (``sigma`` grades wide), the loss its
  cross-entropy with the prediction; ``cb_ldl`` weights each sample as ``cb_ce`` does.
- ``soft_f1``: ``1 - macro soft-F1`` over the batch, from probabilities.
- a weighted sum: ``"cb_focal:0.8+soft_f1:0.2"``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NAMES = ("ce", "ls", "focal", "cb_ce", "cb_focal", "masked_ls", "ldl", "cb_ldl", "soft_f1")


def class_balanced_weights(counts, beta: float) -> torch.Tensor:
    counts = torch.as_tensor(counts, dtype=torch.float64).clamp(min=1)
    weights = (1.0 - beta) / (1.0 - torch.pow(beta, counts))
    return (weights / weights.sum() * len(counts)).float()


def focal_loss(logits, target, gamma: float, weight=None) -> torch.Tensor:
    log_p = F.log_softmax(logits, dim=1).gather(1, target[:, None])[:, 0]
    loss = -((1 - log_p.exp()) ** gamma) * log_p
    if weight is not None:
        loss = loss * weight[target]
    return loss.mean()


def masked_smoothing_targets(target, n_classes: int, smoothing: float) -> torch.Tensor:
    """Soft targets: 1 - smoothing on the grade, smoothing split over its existing neighbours."""
    soft = torch.zeros(len(target), n_classes, dtype=torch.float32, device=target.device)
    rows = torch.arange(len(target), device=target.device)
    for step in (-1, 1):
        neighbour = target + step
        valid = (neighbour >= 0) & (neighbour < n_classes)
        share = smoothing / (((target - 1) >= 0).float() + ((target + 1) < n_classes).float())
        soft[rows[valid], neighbour[valid]] = share[valid]
    soft[rows, target] = 1.0 - smoothing
    return soft


def label_distribution_targets(target, n_classes: int, sigma: float) -> torch.Tensor:
    """Soft targets: a Gaussian over the grades 0..n_classes-1 centred on each true grade, normalised."""
    grades = torch.arange(n_classes, dtype=torch.float32, device=target.device)
    dist = torch.exp(-((grades[None, :] - target[:, None].float()) ** 2) / (2 * sigma**2))
    return dist / dist.sum(1, keepdim=True)


def soft_f1_loss(logits, target, eps: float = 1e-7) -> torch.Tensor:
    probs = F.softmax(logits, dim=1)
    onehot = F.one_hot(target, logits.shape[1]).float()
    tp = (probs * onehot).sum(0)
    fp = (probs * (1 - onehot)).sum(0)
    fn = ((1 - probs) * onehot).sum(0)
    return 1 - (2 * tp / (2 * tp + fp + fn + eps)).mean()


class HeadLoss(nn.Module):
    """One head's loss from a spec string, e.g. ``"cb_focal"`` or ``"cb_focal:0.8+soft_f1:0.2"``."""

    def __init__(
        self, spec: str, counts, gamma: float = 2.0, beta: float = 0.999, smoothing: float = 0.1, sigma: float = 0.8
    ):
        super().__init__()
        self.parts = []
        for term in spec.split("+"):
            name, _, weight = term.strip().partition(":")
            if name not in NAMES:
                raise ValueError(
                    f"unknown loss {name!r}; choose from {', '.join(NAMES)} (or a sum like ce:0.5+soft_f1:0.5)"
                )
            self.parts.append((name, float(weight) if weight else 1.0))
        self.gamma, self.smoothing, self.sigma, self.n_classes = gamma, smoothing, sigma, len(counts)
        self.register_buffer("cb_weight", class_balanced_weights(counts, beta))

    def term(self, name: str, logits, target) -> torch.Tensor:
        if name == "ce":
            return F.cross_entropy(logits, target)
        if name == "ls":
            return F.cross_entropy(logits, target, label_smoothing=self.smoothing)
        if name == "focal":
            return focal_loss(logits, target, self.gamma)
        if name == "cb_ce":
            return (F.cross_entropy(logits, target, reduction="none") * self.cb_weight[target]).mean()
        if name == "cb_focal":
            return focal_loss(logits, target, self.gamma, self.cb_weight)
        if name == "masked_ls":
            soft = masked_smoothing_targets(target, self.n_classes, self.smoothing)
            return -(soft * F.log_softmax(logits, dim=1)).sum(1).mean()
        if name in ("ldl", "cb_ldl"):
            soft = label_distribution_targets(target, self.n_classes, self.sigma)
            loss = -(soft * F.log_softmax(logits, dim=1)).sum(1)
            return (loss * self.cb_weight[target] if name == "cb_ldl" else loss).mean()
        return soft_f1_loss(logits, target)

    def forward(self, logits, target) -> torch.Tensor:
        logits = logits.float()
        return sum(weight * self.term(name, logits, target) for name, weight in self.parts)
