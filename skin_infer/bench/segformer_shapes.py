"""Face parsers with random weights, of the shipped architecture and of published SegFormer shapes: what
`skin bench` times (no hub needed)."""

from __future__ import annotations

from pathlib import Path

MIT = {  # SegFormer encoders: the published face parser's shape (b5) and the smallest published one (b0)
    "mit-b0": {
        "depths": [2, 2, 2, 2],
        "hidden_sizes": [32, 64, 160, 256],
        "decoder_hidden_size": 256,
        "num_attention_heads": [1, 2, 5, 8],
    },
    "mit-b5": {
        "depths": [3, 6, 40, 3],
        "hidden_sizes": [64, 128, 320, 512],
        "decoder_hidden_size": 768,
        "num_attention_heads": [1, 2, 5, 8],
    },
}
# CelebAMask-HQ's 19 labels, in the order of the public SegFormer face parser
FACE_LABELS = [
    "background",
    "skin",
    "l_brow",
    "r_brow",
    "l_eye",
    "r_eye",
    "eye_g",
    "l_ear",
    "r_ear",
    "ear_r",
    "nose",
    "mouth",
    "u_lip",
    "l_lip",
    "neck",
    "neck_l",
    "cloth",
    "hair",
    "hat",
]


def make_segformer(folder: Path, shape: str | dict, seed: int = 0) -> Path:
    """A SegFormer face parser with random weights, saved with save_pretrained (no hub); ``shape`` is a name
    in ``MIT`` or the encoder sizes themselves."""
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.manual_seed(seed)
    config = SegformerConfig(
        **(MIT[shape] if isinstance(shape, str) else shape),
        sr_ratios=[8, 4, 2, 1],
        num_labels=len(FACE_LABELS),
        id2label=dict(enumerate(FACE_LABELS)),
        label2id={n: i for i, n in enumerate(FACE_LABELS)},
    )
    SegformerForSemanticSegmentation(config).save_pretrained(folder)
    return folder


def make_parser_run(folder: Path, arch: str, size: int = 256, seed: int = 0) -> Path:
    """A `skin train-parser` run directory holding random weights of ``arch`` (what export and bench read)."""
    import torch

    from ..train.engine import save_weights
    from ..train.parsing import ParseConfig, build_model

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = ParseConfig(data=str(folder), arch=arch, size=size)
    cfg.save(folder / "config.json")
    save_weights(build_model(cfg).eval(), folder / "best.safetensors")
    return folder
