"""Box-detector training (wrinkles) on YOLO-format data: a CenterNet-style single-stage detector.

The network is timm's MobileNetV2 (ImageNet weights imported offline with ``--init-weights``, see
``import_weights``) under the face parser's all-MLP decoder at stride 4, with two small heads: a class heatmap
(penalty-reduced focal loss on Gaussian targets, CenterNet) and, at each box centre, its sub-cell offset and log
size. The exported graph (:class:`DetectorGraph`) turns them into peak scores and boxes in input pixels; decoding
and average precision are the runtime's (``runtime/detections.py``), so validation here is the product's.

Data: ``labels.csv`` (``file``, ``split``) beside ``labels/<stem>.txt`` (``class cx cy w h``, normalised) and
``classes.txt``. The train split of the shared wrinkle set is augmented material, 640x640 copies mostly 4-photo
mosaics: those are zoomed in so a face has a single portrait's scale (mosaic-aware framing). The rare types are
handled by repeat-factor sampling (LVIS): an image is drawn ``max(1, sqrt(t / f))`` times per epoch, ``f`` the
share of images holding its rarest type. The run directory matches the other trainers'.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from ..runtime.detections import PAD, Boxes, box_report, decode, letterbox, read_classes, read_yolo
from ..runtime.files import atomic_write
from .checks import DataError, existing_files
from .config import RunConfig
from .engine import TrainError, console, no_callback
from .loop import EpochLoop
from .parsing import MLPDecoder, to_tensor

STRIDE = 4
MEAN_STD = ([0.5] * 3, [0.5] * 3)  # the imported TFLite MobileNetV2 expects [-1, 1]


@dataclass
class DetectConfig(RunConfig):
    data: str = ""
    init_weights: str | None = None  # ImageNet MobileNetV2 safetensors (from import_weights)
    size: int = 384
    epochs: int = 40
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    decoder_dim: int = 96
    repeat_threshold: float = 0.15  # repeat-factor sampling's t
    mosaic_zoom: float = 1.8  # mean zoom of 640x640 (mosaic) train copies
    val_threshold: float = 0.05  # score threshold while measuring val mAP
    limit: int | None = None
    seed: int = 0
    threads: int = 0

    def __post_init__(self):
        if self.size % 32:
            raise ValueError(f"size {self.size} must be a multiple of 32")


# -- data -----------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    name: str
    image: np.ndarray  # RGB
    truth: Boxes  # in image pixels
    mosaic: bool


def read_split(root: Path, split: str, n_classes: int) -> list[Sample]:
    """The images of ``split`` in ``labels.csv`` with their boxes (missing images refused past checks.py's share)."""
    table = root / "labels.csv"
    if not table.is_file():
        raise DataError(f"{table}: missing; expected labels.csv with 'file' and 'split' columns")
    with table.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("split") == split]
    present = existing_files([root / r["file"] for r in rows], root, "image")
    samples = []
    for path in sorted(present):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise DataError(f"{path}: cannot be read as an image")
        h, w = image.shape[:2]
        label = root / "labels" / f"{path.stem}.txt"
        truth = read_yolo(label, w, h, n_classes) if label.is_file() else Boxes.empty()
        samples.append(Sample(path.name, cv2.cvtColor(image, cv2.COLOR_BGR2RGB), truth, (w, h) == (640, 640)))
    return samples


def repeat_factors(samples: list[Sample], n_classes: int, threshold: float) -> np.ndarray:
    """LVIS repeat-factor sampling: per image, ``max(1, sqrt(t / f_c))`` over the classes it holds."""
    holds = np.zeros((len(samples), n_classes), bool)
    for i, s in enumerate(samples):
        holds[i, np.unique(s.truth.classes)] = True
    share = np.maximum(holds.mean(0), 1e-9)
    per_class = np.maximum(1.0, np.sqrt(threshold / share))
    return np.array([per_class[h].max() if h.any() else 1.0 for h in holds])


def augment(sample: Sample, size: int, mosaic_zoom: float, rng: np.random.Generator) -> tuple[np.ndarray, Boxes]:
    """Scale and shift onto a ``size`` square (mosaics zoomed to one face's scale), flip, colour and blur."""
    h, w = sample.image.shape[:2]
    zoom = rng.uniform(0.75, 1.3) * (rng.uniform(0.8, 1.2) * mosaic_zoom if sample.mosaic else 1.0)
    scale = size / max(h, w) * zoom
    half = size / (2 * scale)  # half the window, in source pixels
    cx = rng.uniform(min(half, w / 2), max(w - half, w / 2))
    cy = rng.uniform(min(half, h / 2), max(h - half, h / 2))
    matrix = np.array([[scale, 0, size / 2 - scale * cx], [0, scale, size / 2 - scale * cy]])
    image = cv2.warpAffine(sample.image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=(PAD,) * 3)
    xyxy = sample.truth.xyxy * scale + np.tile(matrix[:, 2], 2)
    clipped = np.clip(xyxy, 0, size)
    area = np.prod(xyxy[:, 2:] - xyxy[:, :2], axis=1)
    kept = np.prod(np.clip(clipped[:, 2:] - clipped[:, :2], 0, None), axis=1)
    keep = (kept >= 0.4 * np.maximum(area, 1e-9)) & np.all(clipped[:, 2:] - clipped[:, :2] >= 2, axis=1)
    classes, clipped = sample.truth.classes[keep], clipped[keep]
    if rng.random() < 0.5:  # no left/right types: a flip keeps the labels
        image = image[:, ::-1]
        clipped = np.column_stack([size - clipped[:, 2], clipped[:, 1], size - clipped[:, 0], clipped[:, 3]])
    hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-6, 6)) % 180
    hsv[..., 1] *= rng.uniform(0.6, 1.4)
    hsv[..., 2] = hsv[..., 2] * rng.uniform(0.7, 1.3) + rng.uniform(-20, 20)
    image = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
    if rng.random() < 0.2:
        image = cv2.GaussianBlur(image, (3, 3), 0)
    if rng.random() < 0.1:
        image = np.repeat(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    return np.ascontiguousarray(image), Boxes(classes, np.ones(len(classes), np.float32), clipped)


def targets(boxes: Boxes, n_classes: int, grid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(heatmap [C, G, G], regression [4, G, G]: offset x, y and log w, h in cells, mask [G, G]) for one image.
    Gaussian widths follow each box's sides (TTFNet's 0.54 / 6): wrinkles are long and thin."""
    heat = np.zeros((n_classes, grid, grid), np.float32)
    reg = np.zeros((4, grid, grid), np.float32)
    mask = np.zeros((grid, grid), np.float32)
    ys, xs = np.mgrid[0:grid, 0:grid].astype(np.float32)
    order = np.argsort(-np.prod(boxes.xyxy[:, 2:] - boxes.xyxy[:, :2], axis=1))  # small boxes written last
    for i in order:
        x1, y1, x2, y2 = boxes.xyxy[i] / STRIDE
        cx, cy, bw, bh = (x1 + x2) / 2, (y1 + y2) / 2, max(x2 - x1, 0.5), max(y2 - y1, 0.5)
        ix, iy = min(int(cx), grid - 1), min(int(cy), grid - 1)
        sx, sy = max(0.54 * bw / 6, 0.5), max(0.54 * bh / 6, 0.5)
        g = np.exp(-((xs - ix) ** 2) / (2 * sx**2) - ((ys - iy) ** 2) / (2 * sy**2))
        k = boxes.classes[i]
        heat[k] = np.maximum(heat[k], g)
        heat[k, iy, ix] = 1.0
        reg[:, iy, ix] = (cx - ix, cy - iy, math.log(bw), math.log(bh))
        mask[iy, ix] = 1.0
    return heat, reg, mask


# -- model ----------------------------------------------------------------------------------------------------


class CenterNet(nn.Module):
    """MobileNetV2 (strides 4-32) -> all-MLP fusion at stride 4 -> heatmap logits and box regression."""

    def __init__(self, n_classes: int, dim: int):
        super().__init__()
        import timm

        self.encoder = timm.create_model("mobilenetv2_100", features_only=True, out_indices=(1, 2, 3, 4))
        self.neck = MLPDecoder(self.encoder.feature_info.channels(), dim, dim)
        self.heat = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), nn.ReLU(), nn.Conv2d(dim, n_classes, 1))
        self.box = nn.Sequential(nn.Conv2d(dim, dim, 3, padding=1), nn.ReLU(), nn.Conv2d(dim, 4, 1))
        nn.init.constant_(self.heat[-1].bias, -2.19)  # prior 0.1: the focal loss starts stable (CenterNet)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.neck(self.encoder(x))
        return self.heat(features), self.box(features)


class DetectorGraph(nn.Module):
    """What the exported ONNX graph computes: class scores [N, C, G, G] and boxes [N, 4, G, G] in input pixels
    (the peaks are picked in ``detections.decode``: an equality test in the graph would flip on rounding)."""

    def __init__(self, model: CenterNet, size: int):
        super().__init__()
        self.model = model
        grid = size // STRIDE
        ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
        self.register_buffer("cells", torch.stack([xs, ys]).float()[None], persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        heat, reg = self.model(x)
        scores = heat.sigmoid()
        centre = (self.cells + reg[:, :2].sigmoid()) * STRIDE
        half = reg[:, 2:].clamp(max=8.0).exp() * (STRIDE / 2)
        return scores, torch.cat([centre - half, centre + half], dim=1)


def focal_heatmap_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (alpha 2, beta 4), summed and divided by the number of boxes."""
    p = logits.sigmoid().clamp(1e-4, 1 - 1e-4)
    positive = target.eq(1).float()
    pos = -(torch.log(p) * (1 - p) ** 2 * positive).sum()
    neg = -(torch.log(1 - p) * p**2 * (1 - target) ** 4 * (1 - positive)).sum()
    return (pos + neg) / positive.sum().clamp(min=1)


def build_model(cfg: DetectConfig, n_classes: int) -> CenterNet:
    model = CenterNet(n_classes, cfg.decoder_dim)
    if cfg.init_weights:
        own = model.encoder.state_dict()
        state = load_file(cfg.init_weights)
        usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        if len(usable) < len(own) // 2:
            raise TrainError(f"--init-weights {cfg.init_weights}: not a MobileNetV2 (mobilenetv2_100) state dict")
        model.encoder.load_state_dict(usable, strict=False)
    return model


# -- training -------------------------------------------------------------------------------------------------


class DetectorTrainer(EpochLoop):
    def __init__(self, cfg: DetectConfig, out: Path, resume: bool = False):
        self.cfg, self.out = cfg, Path(out)
        self.on_epoch = no_callback
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        root = Path(cfg.data)
        self.classes = read_classes(root)
        self.train = read_split(root, "train", len(self.classes))[: cfg.limit]
        self.val = read_split(root, "val", len(self.classes))
        if not self.train or not self.val:
            raise DataError(f"{root / 'labels.csv'}: needs rows with split 'train' and split 'val'")
        self.repeats = repeat_factors(self.train, len(self.classes), cfg.repeat_threshold)
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg, len(self.classes)).to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.steps_per_epoch = math.ceil(self.repeats.sum() / cfg.batch_size)
        self.epoch, self.updates, self.best_score, self.best_epoch, self.history = 0, 0, -math.inf, -1, []
        self.out.mkdir(parents=True, exist_ok=True)
        if resume:
            self._load_state()
        else:
            cfg.save(self.out / "config.json")

    def _epoch_order(self, rng: np.random.Generator) -> np.ndarray:
        """Each image ``floor(r)`` times plus once more with probability ``r - floor(r)``, shuffled."""
        r = self.repeats
        counts = np.floor(r).astype(int) + (rng.random(len(r)) < r - np.floor(r))
        return rng.permutation(np.repeat(np.arange(len(r)), counts))

    def _train_epoch(self) -> tuple[float, float]:
        self.model.train()
        rng = np.random.default_rng([self.cfg.seed, self.epoch])  # resume repeats an epoch exactly
        torch.manual_seed(self.cfg.seed * 100_003 + self.epoch)
        size, grid, n = self.cfg.size, self.cfg.size // STRIDE, len(self.classes)
        order = self._epoch_order(rng)
        total, seen, start = 0.0, 0, time.perf_counter()
        for b in range(0, len(order), self.cfg.batch_size):
            picked = order[b : b + self.cfg.batch_size]
            batch = [augment(self.train[i], size, self.cfg.mosaic_zoom, rng) for i in picked]
            if len(batch) < 2:  # BatchNorm cannot train on one image
                continue
            x = to_tensor([im for im, _ in batch], *MEAN_STD).contiguous(memory_format=torch.channels_last)
            maps = [targets(bx, n, grid) for _, bx in batch]
            heat, reg, mask = (torch.from_numpy(np.stack([m[k] for m in maps])) for k in range(3))
            heat_logits, reg_out = self.model(x)
            loss = focal_heatmap_loss(heat_logits, heat)
            m = mask[:, None]
            if m.sum() > 0:
                offset = F.l1_loss(reg_out[:, :2].sigmoid() * m, reg[:, :2] * m, reduction="sum")
                log_size = F.l1_loss(reg_out[:, 2:] * m, reg[:, 2:] * m, reduction="sum")
                loss = loss + (offset + log_size) / m.sum()
            for group in self.optimizer.param_groups:
                group["lr"] = self._lr()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.updates += 1
            total += float(loss.detach()) * len(batch)
            seen += len(batch)
        return total / max(seen, 1), seen / (time.perf_counter() - start)

    @torch.inference_mode()
    def evaluate(self, samples: list[Sample], batch: int = 16) -> dict:
        """Val mAP the way the runtime decodes: letterboxed whole photos, the exported graph's outputs."""
        self.model.eval()
        graph = DetectorGraph(self.model, self.cfg.size)
        detections = []
        for b in range(0, len(samples), batch):
            chunk = [letterbox(s.image, self.cfg.size) for s in samples[b : b + batch]]
            scores, boxes = graph(to_tensor([im for im, _ in chunk], *MEAN_STD))
            for s, bx, (_, framing) in zip(scores.numpy(), boxes.numpy(), chunk, strict=True):
                found = decode(s, bx, self.cfg.val_threshold)
                detections.append(Boxes(found.classes, found.scores, framing.to_source(found.xyxy)))
        return box_report(detections, [s.truth for s in samples], self.classes)

    def fit(self) -> dict:
        cfg = self.cfg
        console.print(
            f"training a CenterNet detector at {cfg.size}px on {len(self.train)} images "
            f"({self.repeats.sum():.0f} draws per epoch with repeat-factor sampling), validating on {len(self.val)}; "
            f"run directory {self.out}",
            highlight=False,
        )
        while self.epoch < cfg.epochs:
            loss, ips = self._train_epoch()
            metrics = self.evaluate(self.val)
            self.epoch += 1
            row = {
                "epoch": self.epoch,
                "train_loss": round(loss, 5),
                "lr": round(self._lr(), 7),
                "images_per_s": round(ips, 2),
                "val_map50": metrics["map50"],
            }
            self._end_epoch(row, (metrics["map50"] or 0.0))
            console.print(
                f"epoch {self.epoch}: loss {loss:.4f} ({ips:.1f} img/s), val mAP50 {metrics['map50']}"
                f"{'  (best)' if self.best_epoch == self.epoch else ''}",
                highlight=False,
            )
        return self.finish()

    def finish(self) -> dict:
        """Evaluate the selected checkpoint on val; write metrics.json and curves.png."""
        self.model.load_state_dict(load_file(str(self.out / "best.safetensors")))
        result = {
            "arch": "centernet-mnv2",
            "size": self.cfg.size,
            "classes": self.classes,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epoch,
            "parameters_m": round(sum(p.numel() for p in self.model.parameters()) / 1e6, 3),
            "val": self.evaluate(self.val),
        }
        atomic_write(self.out / "metrics.json", json.dumps(result, indent=2) + "\n")
        from .plots import write_curves

        write_curves(self.out / "curves.png", self.history, ("val_map50",))
        return result
