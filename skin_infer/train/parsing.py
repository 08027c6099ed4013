"""Face-parser training on CelebAMask-HQ-style data (``images/*.jpg`` + ``masks/*.png`` label maps).

Two architectures, both with a SegFormer all-MLP decoder at stride 4:

- ``segformer-b0`` / ``segformer-b1``: transformers' SegFormer (MiT encoder), from scratch — no pretrained MiT
  weights are reachable offline;
- ``mnv2-mlp``: timm's MobileNetV2 encoder (ImageNet weights imported offline with ``--init-weights``, see
  ``import_weights``) under the same decoder.

The run directory matches ``skin train``'s: ``config.json`` (re-runs it), ``log.csv``, ``best``/``last``
safetensors, ``state.pt`` (exact resume), ``metrics.json`` (val, and ``test/`` for the final report) and
``curves.png``. Validation is carved from ``train/`` with a fixed seed; ``test/`` is only read by ``finish``.
"""

from __future__ import annotations

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

from ..runtime.files import atomic_write
from ..runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD
from ..runtime.segmentation import confusion, parse_metrics
from .checks import existing_files
from .config import RunConfig
from .engine import TrainError, console, no_callback
from .loop import EpochLoop

# CelebAMask-HQ label ids (SOURCES.txt): "l_" is the subject's left, on the image's right.
LABELS = (
    "background",
    "skin",
    "nose",
    "eye_g",
    "l_eye",
    "r_eye",
    "l_brow",
    "r_brow",
    "l_ear",
    "r_ear",
    "mouth",
    "u_lip",
    "l_lip",
    "hair",
    "hat",
    "ear_r",
    "neck_l",
    "neck",
    "cloth",
)
FLIP_PAIRS = (("l_eye", "r_eye"), ("l_brow", "r_brow"), ("l_ear", "r_ear"))
ARCHITECTURES = ("mnv2-mlp", "segformer-b0", "segformer-b1")


def flip_lut() -> np.ndarray:
    """Label lookup applied after a horizontal flip: each left/right class becomes its mirror."""
    lut = np.arange(256, dtype=np.uint8)
    for a, b in FLIP_PAIRS:
        ia, ib = LABELS.index(a), LABELS.index(b)
        lut[ia], lut[ib] = ib, ia
    return lut


@dataclass
class ParseConfig(RunConfig):
    data: str = ""
    arch: str = "mnv2-mlp"
    init_weights: str | None = None  # mnv2-mlp: ImageNet MobileNetV2 safetensors (from import_weights)
    size: int = 256
    epochs: int = 30
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    decoder_dim: int = 128
    dice_weight: float = 0.5
    val_fraction: float = 0.1
    limit: int | None = None  # train on the first N training images (sanity runs)
    seed: int = 0
    threads: int = 0

    def __post_init__(self):
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"arch {self.arch!r} is not one of {', '.join(ARCHITECTURES)}")
        if self.size % 32:
            raise ValueError(f"size {self.size} must be a multiple of 32")

    @property
    def mean_std(self) -> tuple[list[float], list[float]]:
        # The imported TFLite MobileNetV2 expects [-1, 1] inputs.
        return ([0.5] * 3, [0.5] * 3) if self.arch == "mnv2-mlp" else (list(IMAGENET_MEAN), list(IMAGENET_STD))


# -- data -----------------------------------------------------------------------------------------------------


def read_pairs(folder: Path) -> list[tuple[Path, Path]]:
    images, masks = folder / "images", folder / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise TrainError(f"{folder}: expected images/ and masks/ sub-folders (CelebAMask-HQ layout)")
    found = sorted(images.glob("*.jpg"))
    if not found:
        raise TrainError(f"{folder}: no image/mask pairs (images/NAME.jpg with masks/NAME.png)")
    wanted = [masks / f"{image.stem}.png" for image in found]
    present = existing_files(wanted, masks, "mask")  # the same checks as every trainer (checks.py)
    return [(image, mask) for image, mask in zip(found, wanted, strict=True) if mask in present]


def validation_split(pairs: list, cfg: ParseConfig) -> tuple[list, list]:
    """(train, val): a fixed-seed share of ``train/`` for validation (CelebAMask-HQ has no identity groups here)."""
    order = np.random.default_rng(cfg.seed).permutation(len(pairs))
    n_val = max(1, round(cfg.val_fraction * len(pairs)))
    return [pairs[i] for i in order[n_val:]][: cfg.limit], [pairs[i] for i in order[:n_val]]


def load_pair(image_path: Path, mask_path: Path, side: int) -> tuple[np.ndarray, np.ndarray]:
    """RGB image and label map, both ``side`` x ``side`` (label maps resized with nearest neighbour)."""
    from PIL import Image  # OpenCV turns palette PNGs into colours; Pillow keeps the indices (the label ids)

    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    with Image.open(mask_path) as mask:
        labels = np.asarray(mask) if mask.mode in ("P", "L") else None
    if image is None or labels is None:
        raise TrainError(f"{image_path}: image or its mask cannot be read as an image and a one-channel label map")
    image = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
    labels = cv2.resize(labels, (side, side), interpolation=cv2.INTER_NEAREST)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), labels


def augment(image: np.ndarray, labels: np.ndarray, size: int, rng: np.random.Generator) -> tuple:
    """Scale, rotation and shift (framing like the runtime's face crop: tight to loose), flip with left/right
    label swap, colour jitter and blur. ``image`` RGB uint8; returns (image, labels) at ``size``."""
    side = image.shape[0]
    zoom = rng.uniform(0.75, 1.45)  # > 1: tighter than the dataset's framing, < 1: looser (a padded crop)
    angle = rng.uniform(-20, 20)
    shift = rng.uniform(-0.08, 0.08, size=2) * side
    matrix = cv2.getRotationMatrix2D((side / 2, side / 2), angle, zoom * size / side)
    matrix[:, 2] += (size - side) / 2 + shift * zoom * size / side
    border = int(rng.integers(0, 2))  # black borders (image edge) or replicated ones (a face crop in a photo)
    mode = cv2.BORDER_CONSTANT if border == 0 else cv2.BORDER_REPLICATE
    image = cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=mode)
    labels = cv2.warpAffine(labels, matrix, (size, size), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
    if rng.random() < 0.5:
        image, labels = image[:, ::-1], flip_lut()[labels[:, ::-1]]
    hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-6, 6)) % 180
    hsv[..., 1] *= rng.uniform(0.6, 1.4)
    hsv[..., 2] = hsv[..., 2] * rng.uniform(0.6, 1.4) + rng.uniform(-25, 25)
    image = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)
    if rng.random() < 0.3:
        k = int(rng.choice([3, 5]))
        image = cv2.GaussianBlur(image, (k, k), 0)
    return np.ascontiguousarray(image), np.ascontiguousarray(labels)


def to_tensor(images: list[np.ndarray], mean: list[float], std: list[float]) -> torch.Tensor:
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


# -- models ---------------------------------------------------------------------------------------------------


class MLPDecoder(nn.Module):
    """SegFormer's all-MLP head: each stage projected to ``dim``, upsampled to stride 4, fused, classified."""

    def __init__(self, channels: list[int], dim: int, n_classes: int):
        super().__init__()
        self.proj = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in channels)
        self.fuse = nn.Sequential(nn.Conv2d(dim * len(channels), dim, 1, bias=False), nn.BatchNorm2d(dim), nn.ReLU())
        self.classify = nn.Conv2d(dim, n_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        size = features[0].shape[2:]
        up = [
            F.interpolate(p(f), size=size, mode="bilinear", align_corners=False) if i else p(f)
            for i, (p, f) in enumerate(zip(self.proj, features, strict=True))
        ]
        return self.classify(self.fuse(torch.cat(up, dim=1)))


class MobileNetV2MLP(nn.Module):
    """MobileNetV2 features at strides 4, 8, 16, 32 under the MLP decoder; logits at stride 4."""

    def __init__(self, n_classes: int, dim: int):
        super().__init__()
        import timm

        self.encoder = timm.create_model("mobilenetv2_100", features_only=True, out_indices=(1, 2, 3, 4))
        self.decoder = MLPDecoder(self.encoder.feature_info.channels(), dim, n_classes)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(pixel_values))


class SegFormerLogits(nn.Module):
    """transformers' SegFormer returning plain logits (stride 4), like the other architecture."""

    def __init__(self, n_classes: int, variant: str, dim: int):
        super().__init__()
        from transformers import SegformerConfig, SegformerForSemanticSegmentation

        sizes = {"b0": ([32, 64, 160, 256], [2, 2, 2, 2]), "b1": ([64, 128, 320, 512], [2, 2, 2, 2])}[variant]
        config = SegformerConfig(
            num_labels=n_classes,
            hidden_sizes=sizes[0],
            depths=sizes[1],
            decoder_hidden_size=dim,
            id2label=dict(enumerate(LABELS)),
            label2id={n: i for i, n in enumerate(LABELS)},
        )
        self.model = SegformerForSemanticSegmentation(config)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits


def build_model(cfg: ParseConfig) -> nn.Module:
    if cfg.arch == "mnv2-mlp":
        model = MobileNetV2MLP(len(LABELS), cfg.decoder_dim)
        if cfg.init_weights:
            own = model.encoder.state_dict()
            state = load_file(cfg.init_weights)
            usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
            if len(usable) < len(own) // 2:
                raise TrainError(f"--init-weights {cfg.init_weights}: not a MobileNetV2 (mobilenetv2_100) state dict")
            model.encoder.load_state_dict(usable, strict=False)
        return model
    return SegFormerLogits(len(LABELS), cfg.arch.split("-")[1], cfg.decoder_dim)


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean soft Dice over the classes present in the batch: small parts (eyes, brows) weigh as much as skin."""
    probs = logits.softmax(1)
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).float()
    inter = (probs * onehot).sum((0, 2, 3))
    total = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    present = onehot.sum((0, 2, 3)) > 0
    return 1 - ((2 * inter + 1) / (total + 1))[present].mean()


# -- metrics --------------------------------------------------------------------------------------------------


# -- training -------------------------------------------------------------------------------------------------


class ParserTrainer(EpochLoop):
    def __init__(self, cfg: ParseConfig, out: Path, resume: bool = False):
        self.cfg, self.out = cfg, Path(out)
        self.on_epoch = no_callback
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        root = Path(cfg.data)
        train_pairs, val_pairs = validation_split(read_pairs(root / "train"), cfg)
        self.test_pairs = read_pairs(root / "test") if (root / "test").is_dir() else []
        console.print(f"loading {len(train_pairs)} training and {len(val_pairs)} validation pairs", highlight=False)
        # Training images are kept at 1.25x the input size: augmentation then never upsamples much.
        self.train = [load_pair(i, m, round(cfg.size * 1.25)) for i, m in train_pairs]
        self.val = [load_pair(i, m, cfg.size) for i, m in val_pairs]
        torch.manual_seed(cfg.seed)
        # channels-last: MobileNetV2's depthwise convolutions train about 1.6x faster on CPU
        self.model = build_model(cfg).to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.steps_per_epoch = math.ceil(len(self.train) / cfg.batch_size)
        self.epoch, self.updates, self.best_score, self.best_epoch, self.history = 0, 0, -math.inf, -1, []
        self.out.mkdir(parents=True, exist_ok=True)
        if resume:
            self._load_state()
        else:
            cfg.save(self.out / "config.json")

    def _train_epoch(self) -> tuple[float, float]:
        self.model.train()
        rng = np.random.default_rng([self.cfg.seed, self.epoch])  # resume repeats an epoch exactly
        torch.manual_seed(self.cfg.seed * 100_003 + self.epoch)
        mean, std = self.cfg.mean_std
        order = rng.permutation(len(self.train))
        total, start = 0.0, time.perf_counter()
        for b in range(self.steps_per_epoch):
            picked = order[b * self.cfg.batch_size :][: self.cfg.batch_size]
            batch = [augment(*self.train[i], self.cfg.size, rng) for i in picked]
            x = to_tensor([im for im, _ in batch], mean, std).contiguous(memory_format=torch.channels_last)
            # The loss is taken at the logits' stride 4 (labels by nearest neighbour): 16x less work than full size.
            small = [cv2.resize(lb, (self.cfg.size // 4,) * 2, interpolation=cv2.INTER_NEAREST) for _, lb in batch]
            y = torch.from_numpy(np.stack(small)).long()
            y[y >= len(LABELS)] = 0
            logits = self.model(x)
            loss = F.cross_entropy(logits, y) + self.cfg.dice_weight * dice_loss(logits, y)
            for group in self.optimizer.param_groups:
                group["lr"] = self._lr()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.updates += 1
            total += float(loss.detach()) * len(batch)
        return total / len(self.train), len(self.train) / (time.perf_counter() - start)

    @torch.inference_mode()
    def evaluate(self, pairs: list[tuple[np.ndarray, np.ndarray]], batch: int = 16) -> dict:
        self.model.eval()
        mean, std = self.cfg.mean_std
        matrix = np.zeros((len(LABELS), len(LABELS)), np.int64)
        for b in range(0, len(pairs), batch):
            chunk = pairs[b : b + batch]
            logits = self.model(to_tensor([im for im, _ in chunk], mean, std))
            for logit, (_, labels) in zip(logits, chunk, strict=True):
                up = F.interpolate(logit[None], size=labels.shape, mode="bilinear", align_corners=False)
                pred = up[0].argmax(0).numpy().astype(np.uint8)
                matrix += confusion(pred, np.where(labels < len(LABELS), labels, 0), len(LABELS))
        return parse_metrics(matrix, LABELS)

    def fit(self) -> dict:
        cfg = self.cfg
        n_params = sum(p.numel() for p in self.model.parameters()) / 1e6
        console.print(
            f"training {cfg.arch} ({n_params:.2f} M parameters) at {cfg.size}px on {len(self.train)} images, "
            f"validating on {len(self.val)}; run directory {self.out}",
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
                "val_pixel_accuracy": metrics["pixel_accuracy"],
                "val_mean_f1": metrics["mean_f1"],
                "val_skin_f1": metrics["part_f1"]["skin"],
            }
            self._end_epoch(row, metrics["mean_f1"])
            console.print(
                f"epoch {self.epoch}: loss {loss:.4f} ({ips:.1f} img/s), val mean F1 {metrics['mean_f1']:.4f}, "
                f"skin F1 {metrics['part_f1']['skin']:.4f}{'  (best)' if self.best_epoch == self.epoch else ''}",
                highlight=False,
            )
        return self.finish()

    def finish(self) -> dict:
        """Evaluate the selected checkpoint on val and on ``test/``; write metrics.json and curves.png."""
        self.model.load_state_dict(load_file(str(self.out / "best.safetensors")))
        result = {
            "arch": self.cfg.arch,
            "size": self.cfg.size,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epoch,
            "parameters_m": round(sum(p.numel() for p in self.model.parameters()) / 1e6, 3),
            "val": self.evaluate(self.val),
        }
        if self.test_pairs:
            result["test"] = self.evaluate([load_pair(i, m, self.cfg.size) for i, m in self.test_pairs])
        atomic_write(self.out / "metrics.json", json.dumps(result, indent=2) + "\n")
        from .plots import write_curves

        write_curves(self.out / "curves.png", self.history, ("val_mean_f1", "val_skin_f1", "val_pixel_accuracy"))
        return result
