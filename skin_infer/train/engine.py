"""The training loop and its run directory.

A run directory holds: ``config.json`` (every option, heads and labels; re-runs the run), ``log.csv`` (one row
per epoch), ``best.safetensors`` and ``last.safetensors`` (weights only), ``state.pt`` (what resume needs:
optimizer, scheduler, RNG, history; tensors and plain values only, read with ``weights_only=True``),
``metrics.json`` (the selected checkpoint on val, and on test when there is a test split), confusion
matrices (CSV and PNG) and ``curves.png``.

Every epoch's randomness (shuffling, sampling, augmentation) is seeded from ``(seed, epoch)``, so a resumed
run repeats exactly what an uninterrupted one does.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from safetensors.torch import load_file, save_file
from timm.scheduler import CosineLRScheduler
from torch.utils.data import DataLoader, WeightedRandomSampler

from ..runtime.files import atomic_write
from .checks import class_table
from .config import TrainConfig
from .data import ImageDataset, assign_splits, class_counts, input_spec, read_records, train_transform
from .losses import HeadLoss
from .metrics import head_metrics, summarise
from .model import create_model, model_mean_std

console = Console(stderr=True, soft_wrap=True, markup=False)  # messages hold paths, which may hold [brackets]


def no_callback(row: dict) -> None:
    """What a trainer calls with each epoch's log row when nothing listens (``tracking.tracked_fit`` sets one)."""


class TrainError(RuntimeError):
    """A training run cannot start or go on; the message says why and what to do."""


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError("--device cuda: no CUDA device is visible to torch")
    return torch.device(name)


def save_weights(model: torch.nn.Module, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(path)


def save_state(state: dict, path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, buffer.getvalue())


def write_log(path: Path, history: list[dict]) -> None:
    """One row per epoch, rewritten whole each epoch (atomic: a stopped run leaves a valid log)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
    writer.writeheader()
    writer.writerows(history)
    atomic_write(path, buffer.getvalue())


class Trainer:
    def __init__(self, cfg: TrainConfig, out: Path, resume: bool = False):
        self.cfg, self.out = cfg, Path(out)
        self.on_epoch = no_callback
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        self.device = _device(cfg.device)
        records, heads = read_records(cfg)
        if resume and cfg.heads and [h["labels"] for h in cfg.heads] != [h["labels"] for h in heads]:
            raise TrainError(f"{out}: the data's labels changed since this run started; start a new run")
        cfg.heads = heads
        assign_splits(records, cfg)
        by_split = {s: [r for r in records if r.split == s] for s in ("train", "val", "test")}
        if cfg.limit:
            by_split["train"] = by_split["train"][: cfg.limit]
        if not by_split["train"] or not by_split["val"]:
            raise TrainError("the data needs training and validation images (check the split column)")
        console.print(class_table(heads, by_split, lambda r, h: r.targets[h]), highlight=False)
        torch.manual_seed(cfg.seed)
        n_outputs = sum(len(h["labels"]) for h in heads)
        self.model = create_model(cfg, n_outputs).to(self.device)
        mean, std = model_mean_std(self.model, cfg)
        self.spec = input_spec(cfg, mean, std)
        self.train_set = ImageDataset(by_split["train"], self.spec, train_transform(cfg, self.spec))
        self.val_set = ImageDataset(by_split["val"], self.spec)
        self.test_set = ImageDataset(by_split["test"], self.spec) if by_split["test"] else None
        skipped = self.train_set.skipped + self.val_set.skipped + (self.test_set.skipped if self.test_set else [])
        if skipped:
            console.print(f"warning: {len(skipped)} unreadable image(s) skipped:", style="yellow", highlight=False)
            for message in skipped[:20]:
                console.print(f"  {message}", highlight=False)
            if len(skipped) > 20:
                console.print(f"  … and {len(skipped) - 20} more", highlight=False)
        self.skipped = skipped
        self.slices, start = [], 0
        for head in heads:
            self.slices.append(slice(start, start + len(head["labels"])))
            start += len(head["labels"])
        self.losses = [
            HeadLoss(
                cfg.head_losses.get(h["name"], cfg.loss),
                class_counts(self.train_set.records, i, len(h["labels"])),
                cfg.focal_gamma,
                cfg.cb_beta,
                cfg.smoothing,
                cfg.ldl_sigma,
            ).to(self.device)
            for i, h in enumerate(heads)
        ]
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        # a last batch of one image cannot be trained with BatchNorm: it is dropped (only then)
        self.drop_last = len(self.train_set) > 1 and len(self.train_set) % cfg.batch_size == 1
        self.steps_per_epoch = (
            len(self.train_set) // cfg.batch_size if self.drop_last else math.ceil(len(self.train_set) / cfg.batch_size)
        )
        cycle = cfg.epochs if cfg.schedule == "cosine" else cfg.restart_epochs
        self.scheduler = CosineLRScheduler(
            self.optimizer,
            t_initial=cycle * self.steps_per_epoch,
            lr_min=cfg.lr * 1e-2,
            warmup_t=round(cfg.warmup_epochs * self.steps_per_epoch),
            warmup_lr_init=cfg.lr * 1e-2,
            cycle_decay=cfg.restart_decay if cfg.schedule == "restarts" else 1.0,
            cycle_limit=10_000 if cfg.schedule == "restarts" else 1,
            t_in_epochs=False,
        )
        self.amp = cfg.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.epoch, self.updates, self.best_score, self.best_epoch, self.history = 0, 0, -math.inf, -1, []
        self.out.mkdir(parents=True, exist_ok=True)
        if resume:
            self._load_state()
        else:
            cfg.save(self.out / "config.json")

    # -- state ----------------------------------------------------------------------------------------------
    def _load_state(self) -> None:
        path = self.out / "state.pt"
        if not path.is_file():
            raise TrainError(f"{self.out}: no state.pt to resume from (the run stopped before its first epoch ended)")
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(load_file(str(self.out / "last.safetensors"), device=str(self.device)))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.updates = state["epoch"], state["updates"]
        self.best_score, self.best_epoch = state["best_score"], state["best_epoch"]
        self.history = json.loads(state["history"])

    def _save_state(self) -> None:
        save_weights(self.model, self.out / "last.safetensors")
        save_state(
            {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "epoch": self.epoch,
                "updates": self.updates,
                "best_score": self.best_score,
                "best_epoch": self.best_epoch,
                "history": json.dumps(self.history),
            },
            self.out / "state.pt",
        )

    # -- loops ----------------------------------------------------------------------------------------------
    def _loader(self, epoch: int) -> DataLoader:
        generator = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        sampler = None
        if self.cfg.sampler == "balanced":  # balanced on the first head; the loss keeps the original counts
            targets = np.array([r.targets[0] for r in self.train_set.records])
            counts = np.bincount(targets, minlength=len(self.cfg.heads[0]["labels"]))
            weights = 1.0 / counts[targets]
            sampler = WeightedRandomSampler(weights.tolist(), len(targets), replacement=True, generator=generator)
        return DataLoader(
            self.train_set,
            batch_size=self.cfg.batch_size,
            shuffle=sampler is None,
            sampler=sampler,
            generator=generator,
            num_workers=self.cfg.workers,
            drop_last=self.drop_last,
        )

    def _train_epoch(self, progress: Progress) -> float:
        self.model.train()
        torch.manual_seed(self.cfg.seed * 100_003 + self.epoch)  # augmentation draws from the global generator
        task = progress.add_task(
            f"epoch {self.epoch + 1}/{self.cfg.epochs}", total=self.steps_per_epoch, loss=0.0, ips=0.0
        )
        total, seen, start = 0.0, 0, time.perf_counter()
        for x, y in self._loader(self.epoch):
            x, y = x.to(self.device), y.to(self.device)
            with torch.autocast(self.device.type, enabled=self.amp):
                logits = self.model(x)
            loss = sum(
                fn(logits[:, s], y[:, i]) for i, (fn, s) in enumerate(zip(self.losses, self.slices, strict=True))
            )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.updates += 1
            self.scheduler.step_update(self.updates)
            total += float(loss.detach()) * len(x)
            seen += len(x)
            progress.update(task, advance=1, loss=total / seen, ips=seen / (time.perf_counter() - start))
        progress.remove_task(task)
        return total / max(seen, 1)

    @torch.inference_mode()
    def predict(self, dataset: ImageDataset) -> tuple[np.ndarray, np.ndarray]:
        """Logits (N, outputs) and targets (N, heads) over a dataset, in order."""
        self.model.eval()
        outs, targets = [], []
        for x, y in DataLoader(dataset, batch_size=64, num_workers=self.cfg.workers):
            outs.append(self.model(x.to(self.device)).float().cpu())
            targets.append(y)
        return torch.cat(outs).numpy(), torch.cat(targets).numpy()

    def evaluate(self, dataset: ImageDataset) -> dict:
        logits, targets = self.predict(dataset)
        per_head = {
            h["name"]: head_metrics(targets[:, i], logits[:, s].argmax(1), h["labels"], h["ordinal"])
            for i, (h, s) in enumerate(zip(self.cfg.heads, self.slices, strict=True))
        }
        return summarise(per_head, self.cfg.select_metric)

    def fit(self) -> dict:
        cfg = self.cfg
        console.print(
            f"training {cfg.model} on {len(self.train_set)} images ({self.device}), validating on "
            f"{len(self.val_set)}; run directory {self.out}",
            highlight=False,
        )
        columns = [
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  {task.fields[ips]:.1f} img/s"),
        ]
        with Progress(*columns, console=console, transient=True) as progress:
            while self.epoch < cfg.epochs:
                start = time.perf_counter()
                train_loss = self._train_epoch(progress)
                seconds = time.perf_counter() - start
                metrics = self.evaluate(self.val_set)
                self.epoch += 1
                row = {
                    "epoch": self.epoch,
                    "train_loss": round(train_loss, 5),
                    "lr": self.optimizer.param_groups[0]["lr"],
                    "seconds": round(seconds, 1),
                    "images_per_s": round(len(self.train_set) / seconds, 1),
                    **{
                        f"val_{k}": round(metrics[k], 5) for k in ("accuracy", "balanced_accuracy", "macro_f1", "score")
                    },
                }
                self.history.append(row)
                if metrics["score"] >= self.best_score:  # a later equal score wins
                    self.best_score, self.best_epoch = metrics["score"], self.epoch
                    save_weights(self.model, self.out / "best.safetensors")
                self._save_state()
                write_log(self.out / "log.csv", self.history)
                self.on_epoch(row)  # tracking and sweeps (tracking.py, sweep.py)
                console.print(
                    f"epoch {self.epoch}: loss {train_loss:.4f}, val balanced accuracy "
                    f"{metrics['balanced_accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}"
                    f"{'  (best)' if self.best_epoch == self.epoch else ''}",
                    highlight=False,
                )
                if cfg.patience and self.epoch - self.best_epoch >= cfg.patience:
                    console.print(f"early stop: no better {cfg.select_metric} for {cfg.patience} epochs")
                    break
        return self.finish()

    def finish(self) -> dict:
        """Evaluate the selected checkpoint, write metrics.json, confusion matrices and curves."""
        self.model.load_state_dict(load_file(str(self.out / "best.safetensors"), device=str(self.device)))
        val = self.evaluate(self.val_set)
        result = {
            "select_metric": self.cfg.select_metric,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epoch,
            "balanced_accuracy": val["balanced_accuracy"],
            "macro_f1": val["macro_f1"],
            "accuracy": val["accuracy"],
            "val": val,
            "skipped_images": len(self.skipped),
        }
        if self.test_set is not None and len(self.test_set):
            result["test"] = self.evaluate(self.test_set)
        atomic_write(self.out / "metrics.json", json.dumps(result, indent=2) + "\n")
        from .plots import write_confusion, write_curves

        for split in ("val", "test"):
            for head in self.cfg.heads:
                if split in result:
                    write_confusion(
                        self.out, split, head["name"], head["labels"], result[split]["heads"][head["name"]]["confusion"]
                    )
        write_curves(self.out / "curves.png", self.history)
        return result
