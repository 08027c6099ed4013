"""Model files: the download cache (``SKIN_INFER_HOME``), pinned downloads, and picking the face finder.

Downloads go to a temporary file beside the target, are checked against a pinned sha256, and only
then renamed into place: an interrupted or tampered download never leaves a usable-looking file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .bundle import MANIFEST
from .errors import BundleError, SkinInferError

CACHE_ENV = "SKIN_INFER_HOME"
PARSERS = ("auto", "segformer", "yunet", "haar", "none")


@dataclass(frozen=True)
class ModelSource:
    name: str
    filename: str
    url: str
    sha256: str
    size: int
    licence: str
    description: str


REGISTRY = {
    "yunet": ModelSource(
        name="yunet",
        filename="face_detection_yunet_2023mar.onnx",
        url="https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
        "face_detection_yunet_2023mar.onnx",
        sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
        size=232_589,
        licence="MIT",
        description="YuNet face detector (OpenCV Zoo, 2023mar), 5 landmarks",
    ),
}


DEFAULT_CLASSIFIER = "ham10000-mobilenetv2"  # folder under models/, installed as the skin_infer.models package
MODEL_ENV = "SKIN_INFER_MODEL"  # a bundle path to use instead, or "none"


def default_classifier() -> Path | None:
    """The classifier bundle used when no --model is given: $SKIN_INFER_MODEL, else the one shipped in models/."""
    chosen = os.environ.get(MODEL_ENV)
    if chosen:
        return None if chosen.lower() == "none" else Path(chosen)
    try:
        from importlib.resources import files

        bundle = Path(str(files("skin_infer.models") / DEFAULT_CLASSIFIER))
    except ModuleNotFoundError:
        return None
    return bundle if (bundle / MANIFEST).is_file() else None


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "skin-infer")


def cached_path(name: str) -> Path | None:
    """The cached file of a registry model, when it is there whole (size matches the pin)."""
    source = REGISTRY[name]
    path = cache_dir() / source.filename
    return path if path.is_file() and path.stat().st_size == source.size else None


def pull(
    name: str,
    url: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download a registry model into the cache (checksum verified); return its path."""
    if name not in REGISTRY:
        raise SkinInferError(f"unknown model {name!r}; known: {', '.join(REGISTRY)}.")
    source = REGISTRY[name]
    url = url or source.url
    target = cache_dir() / source.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{source.filename}.", suffix=".part", dir=target.parent)
    digest, done = hashlib.sha256(), 0
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or source.size)
            while block := response.read(1 << 16):
                out.write(block)
                digest.update(block)
                done += len(block)
                if progress:
                    progress(done, total)
        if done < total:
            raise SkinInferError(
                f"{url}: download of {name} interrupted after {done:,} of {total:,} bytes; "
                "nothing was saved, try again."
            )
        if done != source.size or digest.hexdigest() != source.sha256:
            raise SkinInferError(
                f"{url}: the download does not match the pinned checksum of {name} "
                f"(got {done:,} bytes, sha256 {digest.hexdigest()[:16]}…; expected {source.size:,} bytes, "
                f"{source.sha256[:16]}…). Nothing was saved; check the URL or your network proxy."
            )
        os.replace(tmp, target)
    except OSError as exc:
        raise SkinInferError(f"{url}: download of {name} failed ({exc}); nothing was saved, try again.") from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def make_finder(parser: str = "auto", parser_model: str | Path | None = None, device: str = "auto", threads: int = 0):
    """The face finder for ``--parser`` / ``--parser-model``; ``auto`` takes the best one configured."""
    from .faces import HaarDetector, YuNetDetector
    from .parsers import SegFormerParser

    if parser not in PARSERS:
        raise SkinInferError(f"unknown parser {parser!r}; choose one of {', '.join(PARSERS)}.")
    model = Path(parser_model) if parser_model else None
    if model is not None and not model.exists():
        raise BundleError(f"{model}: --parser-model does not exist; give a face-parser bundle folder or a YuNet .onnx.")
    is_bundle = model is not None and (model / MANIFEST).is_file()
    if parser == "auto":
        parser = "segformer" if is_bundle else "yunet" if (model or cached_path("yunet")) else "haar"
    if parser == "none":
        return NoFaces()
    if parser == "haar":
        return HaarDetector()
    if parser == "segformer":
        if not is_bundle:
            raise BundleError(
                "--parser segformer needs --parser-model pointing at a face-parser bundle folder "
                "(make one with `skin export parser`)."
            )
        yunet = cached_path("yunet")
        detector = YuNetDetector(yunet, device, threads) if yunet else HaarDetector()
        return SegFormerParser(model, detector, device, threads)
    yunet = model if model is not None and not is_bundle else cached_path("yunet")
    if yunet is None:
        raise BundleError(
            "--parser yunet needs the YuNet model: run `skin models pull yunet`, "
            "or give the .onnx file with --parser-model."
        )
    return YuNetDetector(yunet, device, threads)


class NoFaces:
    """``--parser none``: every image is analysed whole (dermoscopy, close-ups)."""

    name = "none"
    provider = "none"

    def detect(self, image):
        return [], None
