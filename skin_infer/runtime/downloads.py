"""The model download cache (``SKIN_INFER_HOME``) and the registry of pinned downloads.

Downloads go to a temporary file beside the target, are checked against a pinned sha256, and only
then renamed into place: an interrupted or tampered download never leaves a usable-looking file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .bundle import sha256_file
from .errors import BundleError, SkinInferError

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


def _stamp(path: Path) -> Path:
    return path.with_name(f".{path.name}.verified")


def cached_path(name: str) -> Path | None:
    """The cached file of a registry model, verified: None when it is not there, BundleError when it is
    damaged. The sha256 is computed once per file version (size and mtime) and remembered beside the file."""
    source = REGISTRY[name]
    path = cache_dir() / source.filename
    try:
        info = path.stat()
    except OSError:
        return None
    if not path.is_file():
        return None
    version = f"{info.st_size} {info.st_mtime_ns} {source.sha256}"
    try:
        if _stamp(path).read_text() == version:
            return path
    except OSError:
        pass
    if info.st_size != source.size or sha256_file(path) != source.sha256:
        raise BundleError(
            f"{path}: the cached {name} model is damaged (its checksum is not the pinned one); delete it, or run "
            f"`skin models pull {name}` to download it again."
        )
    with contextlib.suppress(OSError):  # a read-only cache still works; it is only checked again next time
        _stamp(path).write_text(version)
    return path


def pull(
    name: str,
    url: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    timeout: float = 30.0,
    deadline: float = 300.0,
) -> Path:
    """Download a registry model into the cache (checksum verified); return its path.

    ``timeout`` bounds each network wait, ``deadline`` the whole download (a server trickling a byte at a time
    never trips a per-read timeout); the body is never read past the pinned size.
    """
    import http.client  # here, not at the top: with ssl they cost every run 20 ms of its start
    import urllib.parse
    import urllib.request

    if name not in REGISTRY:
        raise SkinInferError(f"unknown model {name!r}; known: {', '.join(REGISTRY)}.")
    source = REGISTRY[name]
    url = url or source.url
    if urllib.parse.urlsplit(url).scheme not in ("http", "https", "file"):
        raise SkinInferError(f"{url}: not a download URL; give an http(s):// address (or file:// for a local mirror).")
    target = cache_dir() / source.filename
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{source.filename}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise SkinInferError(
            f"{target.parent}: the model cache cannot be written ({exc.strerror or exc}); set {CACHE_ENV} to a "
            "writable folder."
        ) from None
    digest, done, stop_at = hashlib.sha256(), 0, time.monotonic() + deadline
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or source.size)
            while block := response.read1(min(1 << 16, source.size + 1 - done)):  # whatever has arrived
                out.write(block)
                digest.update(block)
                done += len(block)
                if done > source.size:
                    raise SkinInferError(
                        f"{url}: the server sends more than the {source.size:,} bytes of {name}; nothing was "
                        "saved. Check the URL."
                    )
                if time.monotonic() > stop_at:
                    raise SkinInferError(
                        f"{url}: download of {name} too slow ({done:,} of {source.size:,} bytes in {deadline:.0f} s); "
                        "nothing was saved, try again or use a mirror (--url)."
                    )
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
        _stamp(target).unlink(missing_ok=True)
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise SkinInferError(f"{url}: download of {name} failed ({exc}); nothing was saved, try again.") from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target
