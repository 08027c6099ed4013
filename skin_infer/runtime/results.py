"""What an analysis returns: ``ImageResult`` holding ``Face``, ``Region`` and ``Prediction`` objects.

``to_dict()`` is the JSON schema other tools read (field names and order are a contract: change them only
with a new schema version); ``csv_rows()`` the CSV's rows. Writers, overlays, the terminal table and the
engines read these objects. The decoded image, the skin mask and activation maps ride along for overlays
but are never serialised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .faces import Face

Box = tuple[int, int, int, int]


@dataclass
class DomainDecision:
    """What a photo without a face is, and how that was decided (``routing.decide_domain``)."""

    label: str  # dermoscopy | face_skin | other | unknown
    score: float | None
    by: str

    def to_dict(self) -> dict:
        return {"label": self.label, "score": self.score, "by": self.by}

    def describe(self) -> str:
        what = {"face_skin": "skin without a detectable face", "other": "not a skin photo", "unknown": "not recognised"}
        score = f" {self.score:.2f}" if self.score is not None else ""
        return f"this photo looks like {what.get(self.label, self.label)} ({self.by}{score})"


@dataclass
class Prediction:
    """One head's answer for one region."""

    label: str
    score: float
    probs: dict[str, float]
    top_k: list[tuple[str, float]]
    expected: float | None = None  # ordinal heads: the probability-weighted grade
    uncertain: bool = False  # the score is below the model's measured confidence: reported, not stated

    @classmethod
    def from_dict(cls, p: dict[str, Any]) -> Prediction:
        top_k = [tuple(t) for t in p["top_k"]]
        return cls(p["label"], p["score"], p["probs"], top_k, p.get("expected"), bool(p.get("uncertain")))

    def to_dict(self) -> dict[str, Any]:
        out = {
            "label": self.label,
            "score": self.score,
            "probs": dict(self.probs),
            "top_k": [[label, p] for label, p in self.top_k],
        }
        if self.expected is not None:
            out["expected"] = self.expected
        if self.uncertain:
            out["uncertain"] = True
        return out


@dataclass(frozen=True)
class Wrinkle:
    """One detected wrinkle: its type, box (x, y, w, h in image pixels) and the detector's score."""

    type: str
    box: Box
    score: float
    uncertain: bool = False  # below the detector's measured threshold: reported, not counted

    def to_dict(self) -> dict[str, Any]:
        out = {"type": self.type, "box": [int(v) for v in self.box], "score": self.score}
        return {**out, "uncertain": True} if self.uncertain else out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Wrinkle:
        return cls(d["type"], tuple(d["box"]), d["score"], bool(d.get("uncertain")))


@dataclass
class Region:
    face_index: int | None  # None: the whole image (no face found)
    name: str
    box: Box | None  # None: the region is not visible in this photo (see note)
    skin_fraction: float  # share of the box that is skin (a parsed region: that is the region's own pixels)
    measures: dict[str, float | str] | None  # colour measures on the region's skin; None without skin
    predictions: dict[str, Prediction] = field(default_factory=dict)  # head name -> prediction
    note: str | None = None  # why a region was not classified
    mask: np.ndarray | None = field(default=None, repr=False, compare=False)  # parsed region over its box
    # the wrinkle detector's boxes and score, on the region it ran on (a face's face_skin, a close-up's
    # whole_image); serialised with the face (``faces[i]``) or the whole-image region
    wrinkles: list[Wrinkle] | None = None
    wrinkle_score: float | None = None

    def wrinkle_dict(self) -> dict[str, Any]:
        if self.wrinkles is None:
            return {}
        return {"wrinkles": [w.to_dict() for w in self.wrinkles], "wrinkle_score": self.wrinkle_score}

    def to_dict(self) -> dict[str, Any]:
        out = {
            "face_index": self.face_index,
            "name": self.name,
            "box": [int(v) for v in self.box] if self.box is not None else None,
            "skin_fraction": self.skin_fraction,
            "measures": self.measures,
            "predictions": {head: p.to_dict() for head, p in self.predictions.items()},
        }
        if self.note is not None:
            out["note"] = self.note
        if self.face_index is None:
            out.update(self.wrinkle_dict())
        return out


# CSV columns: one row per (image, region).
BASE_COLUMNS = ["file", "frame", "time_s", "status", "error", "face_found", "face_index", "track", "region",
                "x", "y", "w", "h", "skin_fraction"]  # fmt: skip
_LAB = ["ita_deg", "skin_tone", "redness_a", "lab_l", "lab_b"]
MEASURE_COLUMNS = [
    *_LAB,
    "pixels",
    "ita_iqr",
    "redness_a_iqr",
    "lab_l_iqr",
    "lab_b_iqr",
    *(f"{name}_captured" for name in _LAB),
    "ita_note",
    "redness_index",
    "wrinkle_count",
    "wrinkle_density",
    "wrinkle_score",
]
TEXT_COLUMNS = {"file", "status", "error", "region", "skin_tone", "skin_tone_captured", "ita_note"}


def csv_columns(heads: list[tuple[str, tuple[str, ...]]]) -> list[str]:
    """Stable column names: the base columns, the measures, then per head label, score and one p_ per label."""
    cols = BASE_COLUMNS + MEASURE_COLUMNS
    for name, labels in heads:
        cols += [f"{name}_label", f"{name}_score", f"{name}_uncertain"] + [f"{name}_p_{label}" for label in labels]
    return cols


@dataclass
class ImageResult:
    file: str
    status: str  # "ok" or "error"
    error: str | None = None
    width: int | None = None
    height: int | None = None
    faces: list[Face] = field(default_factory=list)
    regions: list[Region] = field(default_factory=list)
    timings_ms: dict[str, float] | None = None
    domain: DomainDecision | None = None  # for a photo without a face, when domain-aware models ran
    not_run: dict[str, str] = field(default_factory=dict)  # model name -> why it gave no answer here
    light: Any = None  # light.Light: the correction behind the normalised colour measures
    frame: int | None = None  # a video's frame index (and time): one result per analysed frame
    time_s: float | None = None
    # For overlays only, never serialised:
    image: np.ndarray | None = field(default=None, repr=False, compare=False)
    skin: np.ndarray | None = field(default=None, repr=False, compare=False)  # uint8 0/1 at working scale
    cams: dict[int, np.ndarray] = field(default_factory=dict, repr=False, compare=False)  # region index -> 0..1

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ImageResult:
        """The result a ``to_dict()`` record describes (what a writer, a service or another engine read back)."""
        from .faces import LANDMARK_NAMES

        faces = [
            Face(
                tuple(f["box"]),
                f["score"],
                np.array([f["landmarks"][n] for n in LANDMARK_NAMES], np.float32) if f.get("landmarks") else None,
                track=f.get("track"),
            )
            for f in record.get("faces", [])
        ]
        regions = [
            Region(
                r["face_index"],
                r["name"],
                tuple(r["box"]) if r.get("box") is not None else None,
                r["skin_fraction"],
                r.get("measures"),
                {head: Prediction.from_dict(p) for head, p in (r.get("predictions") or {}).items()},
                r.get("note"),
            )
            for r in record.get("regions", [])
        ]
        for region, r in zip(regions, record.get("regions", []), strict=True):
            carrier = r if region.face_index is None else record["faces"][region.face_index]
            if region.name in ("face_skin", "whole_image") and carrier.get("wrinkles") is not None:
                region.wrinkles = [Wrinkle.from_dict(w) for w in carrier["wrinkles"]]
                region.wrinkle_score = carrier.get("wrinkle_score")
        result = cls(
            record["file"], record["status"], record.get("error"), record.get("width"), record.get("height"),
            faces, regions, record.get("timings_ms"), not_run=dict(record.get("not_run") or {}),
            frame=record.get("frame"), time_s=record.get("time_s"),
        )  # fmt: skip
        if record.get("domain"):
            result.domain = DomainDecision(**record["domain"])
        if record.get("light"):
            from .light import Light

            light = record["light"]
            result.light = Light(light["method"], tuple(light["gains_rgb"]), light["reference"], light["pixels"])
        return result

    @classmethod
    def failed(cls, file: str, message: str) -> ImageResult:
        return cls(file=file, status="error", error=message)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        out = {
            "file": self.file,
            **({"frame": self.frame, "time_s": self.time_s} if self.frame is not None else {}),
            "status": self.status,
            "error": self.error,
            "width": self.width,
            "height": self.height,
            "face_found": bool(self.faces),
            "faces": [{**face.to_dict(i), **self._face_wrinkles(i)} for i, face in enumerate(self.faces)],
            "regions": [region.to_dict() for region in self.regions],
        }
        if self.domain is not None:
            out["domain"] = self.domain.to_dict()
        if self.not_run:
            out["not_run"] = dict(self.not_run)
        if self.light is not None:
            out["light"] = self.light.to_dict()
        if self.timings_ms is not None:
            out["timings_ms"] = self.timings_ms
        return out

    def _face_wrinkles(self, index: int) -> dict[str, Any]:
        region = next((r for r in self.regions if r.face_index == index and r.name == "face_skin"), None)
        return region.wrinkle_dict() if region is not None else {}

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per region; a failed image is one row with its error."""
        base = {"file": self.file, "status": self.status, "error": self.error or "", "face_found": bool(self.faces),
                "frame": "" if self.frame is None else self.frame, "time_s": "" if self.time_s is None else self.time_s,
                "track": ""}  # fmt: skip
        rows = []
        for region in self.regions:
            x, y, w, h = region.box if region.box is not None else ("", "", "", "")
            track = self.faces[region.face_index].track if region.face_index is not None else None
            row = {
                **base,
                "track": "" if track is None else track,
                "face_index": "" if region.face_index is None else region.face_index,
                "region": region.name,
                "x": x,
                "y": y,
                "w": w,
                "h": h,
                "skin_fraction": region.skin_fraction,
                **(region.measures or {}),
            }
            if region.wrinkles is not None:
                row["wrinkle_score"] = region.wrinkle_score
            for head, pred in region.predictions.items():
                row[f"{head}_label"], row[f"{head}_score"] = pred.label, pred.score
                row[f"{head}_uncertain"] = pred.uncertain
                row.update({f"{head}_p_{label}": p for label, p in pred.probs.items()})
            rows.append(row)
        return rows or [base]

    def label_map(self) -> np.ndarray:
        """The face parser's label ids at the image's full size (0 where nothing was parsed); where two faces'
        windows overlap, the first face's labels stay."""
        out = np.zeros((self.height, self.width), np.uint8)
        for face in self.faces:
            if face.parse is None:
                continue
            x, y, w, h = face.parse.window
            window = out[y : y + h, x : x + w]
            empty = window == 0
            window[empty] = face.parse.full_labels()[empty]
        return out

    def plot(self) -> np.ndarray:
        """The overlay picture (BGR uint8): skin tint, face and region boxes, labels, heatmaps."""
        from .overlays import render

        if self.image is None:
            raise ValueError(f"{self.file}: no image to draw on ({self.error or 'the result was loaded from a file'})")
        return render(self)

    def save_overlay(self, path: str | Path) -> Path:
        """Write the overlay picture atomically; the suffix picks the format (.jpg, .png, .webp ...)."""
        from .overlays import write_overlay

        return write_overlay(self, Path(path))

    def summary(self) -> str:
        """One line: the image, its faces, and each region's first prediction or colour measure."""
        if not self.ok:
            return f"{self.file}: failed: {self.error}"
        parts = []
        for region in self.regions:
            first = next(iter(region.predictions.items()), None)
            if first:
                parts.append(f"{region.name} {first[0]}={first[1].label} {first[1].score:.2f}")
            elif region.measures and region.measures["ita_deg"] is not None:
                parts.append(f"{region.name} ITA {region.measures['ita_deg']}° ({region.measures['skin_tone']})")
        what = f"{len(self.faces)} face(s)" if self.faces else "no face, analysed whole"
        return f"{self.file}: {self.width}x{self.height}, {what}" + (f"; {', '.join(parts)}" if parts else "")
