"""The model download cache (``SKIN_INFER_HOME``) and the registry of pinned downloads.

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

from .errors import SkinInferError

CACHE_ENV = "SKIN_INFER_HOME"


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
