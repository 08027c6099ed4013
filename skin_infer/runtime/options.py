"""Every analysis option in one place: its name, default, validation and help text.

``Analyzer``, ``skin-infer`` (each option is a typer parameter whose default and help come from here; a test
fails when they drift), ``skin serve`` and the Ray engine all take an ``AnalysisOptions``. Options that only
say how a batch is run (``--out``, ``--resume``, ``--workers``) are not analysis options and live with their
callers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SkinInferError
from .finders import FINDERS
from .images import DEFAULT_MAX_PIXELS
from .light import DEFAULT_METHOD as DEFAULT_LIGHT
from .light import METHODS as LIGHT_METHODS
from .session import DEVICES

PARSERS = tuple(FINDERS)
DEVICE_CHOICES = ("auto", *DEVICES)
CHANNELS = ("RGB", "BGR")


def _help(text: str, cli: bool = True) -> dict[str, Any]:
    return {"help": text, "cli": cli}


@dataclass(frozen=True)
class AnalysisOptions:
    model: tuple[str, ...] = field(
        default=("default",),
        metadata=_help(
            "Classifier bundle folder (repeat for several); default: the shipped models (the acne grader for "
            "faces, the lesion model for dermoscopy close-ups) or $SKIN_INFER_MODEL; 'none' for colour measures only."
        ),
    )
    parser: str = field(default="auto", metadata=_help("Face finder: auto picks segformer > yunet > haar."))
    parser_model: str | None = field(default=None, metadata=_help("Face-parser bundle folder or YuNet .onnx file."))
    device: str = field(default="auto", metadata=_help("Execution provider; an unavailable one is an error."))
    threads: int = field(default=0, metadata=_help("Intra-op threads per model (0: ONNX Runtime's default)."))
    explain: bool = field(default=False, metadata=_help("Add class-activation heatmaps to overlays."))
    min_skin: float = field(default=0.25, metadata=_help("Skin fraction below which a region is not classified (0-1)."))
    top_k: int = field(default=3, metadata=_help("Top-k labels kept per head."))
    max_pixels: int = field(default=DEFAULT_MAX_PIXELS, metadata=_help("Refuse larger images (decompression bombs)."))
    light: str = field(
        default=DEFAULT_LIGHT, metadata=_help("Light correction behind the colour measures (docs/measures.md).")
    )
    min_confidence: float | None = field(
        default=None,
        metadata=_help(
            "Answers (and wrinkle boxes) below this probability are reported 'uncertain', not stated or counted; "
            "default: each model's own (measured on its val split, in its manifest)."
        ),
    )
    min_face_score: float | None = field(
        default=None, metadata=_help("Drop faces the detector scores below this (0-1); default: the detector's own.")
    )
    # numpy arrays only (the Python API): files carry their own channel order
    channels: str = field(default="RGB", metadata=_help("Channel order of numpy arrays: RGB or BGR.", cli=False))

    def __post_init__(self) -> None:
        model = self.model
        if model is None:
            model = ("none",)
        elif isinstance(model, (str, Path)):
            model = (str(model),)
        object.__setattr__(self, "model", tuple(str(m) for m in model) or ("default",))
        if self.parser_model is not None:
            object.__setattr__(self, "parser_model", str(self.parser_model))
        choices = {"parser": PARSERS, "device": DEVICE_CHOICES, "light": LIGHT_METHODS, "channels": CHANNELS}
        for name, allowed in choices.items():
            value = getattr(self, name)
            value = getattr(value, "value", value)  # a CLI enum member
            object.__setattr__(self, name, value)
            if value not in allowed:
                raise SkinInferError(f"{name} {value!r}: choose one of {', '.join(allowed)}.")
        bounds = {"threads": (0, None), "top_k": (1, None), "max_pixels": (1, None), "min_skin": (0.0, 1.0),
                  "min_confidence": (0.0, 1.0), "min_face_score": (0.0, 1.0)}  # fmt: skip
        for name, (low, high) in bounds.items():
            value = getattr(self, name)
            if value is None and name in ("min_confidence", "min_face_score"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SkinInferError(f"{name} {value!r}: give a number.")
            if value < low or (high is not None and value > high):
                raise SkinInferError(f"{name} {value}: must be {'between' if high is not None else 'at least'} "
                                     f"{low}{f' and {high}' if high is not None else ''}.")  # fmt: skip

    @classmethod
    def help(cls, name: str) -> str:
        return _FIELDS[name].metadata["help"]

    @classmethod
    def default(cls, name: str) -> Any:
        return _FIELDS[name].default

    @classmethod
    def cli_names(cls) -> list[str]:
        """The options ``skin-infer`` takes as flags of the same name."""
        return [f.name for f in dataclasses.fields(cls) if f.metadata.get("cli", True)]

    def replace(self, **changes: Any) -> AnalysisOptions:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (JSON, a Ray actor's arguments, an environment variable for server workers)."""
        return {**dataclasses.asdict(self), "model": list(self.model)}


_FIELDS = {f.name: f for f in dataclasses.fields(AnalysisOptions)}
