"""Datasets for training: an ImageFolder tree or a CSV, a grouped stratified split, and the transforms.

The eval transform *is* the runtime's preprocessing (``skin_infer.runtime.preprocess``) driven by the same
spec the bundle's manifest gets, so what the model sees in training is what it sees in deployment.
Images are decoded (and checked) once, up front, with the runtime's decoder, and kept in memory at the
training size: unreadable ones are skipped and reported together, never a crash mid-epoch.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..runtime.errors import ImageError
from ..runtime.images import IMAGE_SUFFIXES, read_image
from ..runtime.preprocess import InputSpec, preprocess, resize_image
from .checks import DataError, existing_files, nan_like, two_classes, unlabelled_rows
from .config import TrainConfig

SPLITS = ("train", "val", "test")


@dataclass
class Record:
    path: Path
    targets: list[int]  # one label index per head
    group: str
    split: str | None


def _sort_labels(values: set[str], ordinal: bool) -> list[str]:
    if ordinal:
        try:
            return sorted(values, key=float)
        except ValueError:
            pass
    return sorted(values)


def read_records(cfg: TrainConfig) -> tuple[list[Record], list[dict]]:
    """All labelled images and the heads (name, labels, ordinal) found in the data."""
    root = Path(cfg.data)
    if not root.is_dir():
        raise FileNotFoundError(f"--data {root}: no such folder")
    rows: list[tuple[Path, list[str], str, str | None]] = []
    if cfg.csv:
        csv_path = Path(cfg.csv) if Path(cfg.csv).is_absolute() else root / cfg.csv
        with open(csv_path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in [cfg.path_column, *cfg.labels] if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(
                    f"{csv_path}: no column(s) {', '.join(missing)} (has {', '.join(reader.fieldnames or [])})"
                )
            unlabelled = []
            for i, row in enumerate(reader):
                values = [(row[c] or "").strip() for c in cfg.labels]
                bad = [(i + 2, c, v) for c, v in zip(cfg.labels, values, strict=True) if nan_like(v)]
                if bad:
                    unlabelled += bad
                    continue
                group = row.get(cfg.group_column, "") if cfg.group_column else ""
                split = (row.get(cfg.split_column) or "").strip() or None
                rows.append((root / row[cfg.path_column], values, group or f"row{i}", split))
        unlabelled_rows(unlabelled, csv_path, cfg.skip_unlabelled)
        source = csv_path
    else:
        if len(cfg.labels) != 1:
            raise ValueError("an image-folder dataset has one head; use a CSV for several")
        split_dirs = [d for d in SPLITS if (root / d).is_dir()]
        for split in split_dirs or [None]:
            base = root / split if split else root
            for class_dir in sorted(p for p in base.iterdir() if p.is_dir()):
                for path in sorted(class_dir.rglob("*")):
                    if path.suffix.lower() in IMAGE_SUFFIXES:
                        rows.append((path, [class_dir.name], str(path), split))
        source = root
    if not rows:
        raise DataError(f"{root}: no labelled images found")
    present = existing_files([r[0] for r in rows], source)
    rows = [r for r in rows if r[0] in present]
    heads = []
    for h, name in enumerate(cfg.labels):
        ordinal = name in cfg.ordinal
        heads.append({"name": name, "labels": _sort_labels({r[1][h] for r in rows}, ordinal), "ordinal": ordinal})
    two_classes(heads, source)
    index = [{label: i for i, label in enumerate(head["labels"])} for head in heads]
    records = [Record(p, [index[h][v] for h, v in enumerate(vals)], g, s) for p, vals, g, s in rows]
    return records, heads


def assign_splits(records: list[Record], cfg: TrainConfig) -> None:
    """Give records without a split one: stratified on the first head, grouped, seeded."""
    todo = [r for r in records if r.split not in SPLITS]
    if not todo:
        return
    from sklearn.model_selection import StratifiedGroupKFold

    def carve(items: list[Record], fraction: float, name: str, seed: int) -> list[Record]:
        folds = max(2, round(1 / fraction))
        y = [r.targets[0] for r in items]
        groups = [r.group for r in items]
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        _, held = next(splitter.split(np.zeros(len(items)), y, groups))
        held_set = set(held.tolist())
        for i in held_set:
            items[i].split = name
        return [r for i, r in enumerate(items) if i not in held_set]

    rest = carve(todo, cfg.test_fraction, "test", cfg.seed) if cfg.test_fraction > 0 else todo
    rest = carve(rest, cfg.val_fraction / (1 - cfg.test_fraction), "val", cfg.seed + 1)
    for r in rest:
        r.split = "train"


def input_spec(cfg: TrainConfig, mean, std) -> InputSpec:
    """The eval preprocessing: what the bundle's manifest will say and the runtime will do."""
    return InputSpec.timm_eval(cfg.img_size, mean, std, cfg.crop_pct, cfg.interpolation, cfg.constancy)


def train_transform(cfg: TrainConfig, spec: InputSpec):
    """Augmentation presets (torchvision v2) ending in the same normalisation as the eval transform."""
    from torchvision.transforms import v2

    size = cfg.img_size
    mean, std = list(spec.mean), list(spec.std)
    if cfg.augment == "none":
        return None
    scale = {"light": (0.7, 1.0), "medium": (0.5, 1.0), "strong": (0.35, 1.0), "photo": (0.6, 1.0)}[cfg.augment]
    steps = [v2.RandomResizedCrop(size, scale=scale, antialias=True), v2.RandomHorizontalFlip()]
    if cfg.augment in ("medium", "strong"):  # dermoscopy has no up or down
        steps += [v2.RandomVerticalFlip(), v2.RandomRotation(30)]
    if cfg.augment != "light":
        strength = 0.3 if cfg.augment == "strong" else 0.15
        steps.append(v2.ColorJitter(strength, strength, strength, strength / 5))
    steps += [v2.ToDtype(torch.float32, scale=True)]
    if cfg.augment == "strong":
        steps.append(v2.GaussianNoise(sigma=0.03))
    steps.append(v2.Normalize(mean, std))
    return v2.Compose(steps)


class ImageDataset(Dataset):
    """Images decoded once (and checked) at construction, each kept as the central square at the resize size.

    Keeping ``floor(size / crop_pct)`` pixels of the shorter side is exact for the eval transform (a shorter-side
    resize to that size, then a centre crop) and enough for augmentation. Files that fail to decode are
    left out and listed in ``skipped``.
    """

    def __init__(self, records: list[Record], spec: InputSpec, transform=None):
        self.spec, self.transform = spec, transform
        side = math.floor(spec.size[0] / spec.crop_pct)
        square = replace(spec, size=(side, side), crop_pct=1.0, resize="shorter_side_center_crop")
        self.records, self.images, self.skipped = [], [], []
        for record in records:
            try:
                self.images.append(resize_image(read_image(record.path), square))
                self.records.append(record)
            except ImageError as exc:
                self.skipped.append(str(exc))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        image = self.images[i]
        if self.transform is None:
            x = torch.from_numpy(preprocess([image], self.spec)[0])
        else:
            x = self.transform(torch.from_numpy(np.ascontiguousarray(image[:, :, ::-1])).permute(2, 0, 1))
        return x, torch.tensor(self.records[i].targets, dtype=torch.long)


def class_counts(records: list[Record], head: int, n_labels: int) -> np.ndarray:
    return np.bincount([r.targets[head] for r in records], minlength=n_labels)
