"""ONNX Runtime's optimised graphs, kept per machine under ``SKIN_INFER_HOME/graphs``.

Starting a session runs ONNX Runtime's graph optimisations (constant folding, fusions, ORT_ENABLE_ALL's NCHWc
layouts): about three quarters of a shipped model's start time. Their result depends on the graph, the ONNX
Runtime version, the session options and the CPU (layouts follow its vector width), so it is saved under a key of
all of them and later loaded with optimisations off: the same graph, the same answers, a quarter of the start.

A cached graph runs like a bundle's own, so it is used only from a folder the user owns that nobody else can
write, and only while its content matches the digest in its name (a damaged file is rebuilt, with a warning).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import tempfile
from functools import cache
from pathlib import Path

import onnxruntime as ort

from .downloads import cache_dir

log = logging.getLogger(__name__)

ENV = "SKIN_INFER_GRAPH_CACHE"  # "0" turns the cache off
KEEP, KEEP_BYTES = 32, 256_000_000  # graphs kept (at most this many, this much); the least recently used go first


def enabled() -> bool:
    return os.environ.get(ENV, "1") != "0"


def folder() -> Path:
    return cache_dir() / "graphs"


@cache
def _machine() -> str:
    """What the optimised graph depends on besides itself: ONNX Runtime and the CPU's instruction set."""
    lines = []
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        lines = [line.strip() for line in fh if line.startswith(("model name", "flags", "Features"))][:2]
    return json.dumps([ort.__version__, platform.machine(), *lines])


def key(graph_sha256: str, settings: str) -> str:
    """The cache key of a graph (its sha256) under session ``settings`` on this machine."""
    return hashlib.sha256(f"{graph_sha256}\0{settings}\0{_machine()}".encode()).hexdigest()[:32]


def _private(path: Path) -> bool:
    """Owned by this user and writable by nobody else (POSIX); elsewhere the user's profile is trusted."""
    if not hasattr(os, "getuid"):
        return True
    info = path.stat()
    return info.st_uid == os.getuid() and not info.st_mode & 0o022


@cache
def _exposed(where: Path) -> None:
    log.warning("%s: optimised graphs not used, other users can write to it (chmod 700 it)", where)


def lookup(name: str) -> tuple[Path, bytes] | None:
    """The cached optimised graph of key ``name`` (its file and content, verified), or None."""
    where = folder()
    try:
        if not _private(where):
            _exposed(where)
            return None
        matches = [entry for entry in os.scandir(where) if entry.name.startswith(f"{name}.")]
    except OSError:
        return None
    for entry in matches:
        path = Path(entry.path)
        try:
            data = path.read_bytes()
        except OSError:  # pruned or replaced by another process meanwhile
            continue
        if path.name == f"{name}.{hashlib.sha256(data).hexdigest()[:16]}.onnx":
            with contextlib.suppress(OSError):
                os.utime(path)  # recently used: kept when the folder is pruned
            return path, data
        log.warning("%s: a damaged optimised graph; it is removed and built again", path)
        path.unlink(missing_ok=True)
    return None


def staging(name: str) -> Path | None:
    """A temporary file for ONNX Runtime to write the optimised graph of key ``name`` to, or None when the cache
    cannot be written (the session is then built as usual)."""
    where = folder()
    try:
        where.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(where):  # never read from: nothing worth writing
            return None
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=where)
        os.close(fd)
    except OSError as exc:
        log.debug("%s: optimised graphs are not cached (%s)", where, exc)
        return None
    return Path(tmp)


def store(name: str, tmp: Path) -> None:
    """Move a written graph into place under its key and digest (atomic), then prune the folder."""
    try:
        data = tmp.read_bytes()
        if data:
            os.replace(tmp, tmp.with_name(f"{name}.{hashlib.sha256(data).hexdigest()[:16]}.onnx"))
        graphs = sorted(((p.stat(), p) for p in folder().glob("*.onnx")), key=lambda e: e[0].st_mtime, reverse=True)
        kept = 0
        for i, (info, path) in enumerate(graphs):  # the most recently used first
            kept += info.st_size
            if i >= KEEP or kept > KEEP_BYTES:
                path.unlink(missing_ok=True)
    except OSError as exc:
        log.debug("%s: optimised graph not cached (%s)", tmp, exc)
    finally:
        tmp.unlink(missing_ok=True)
