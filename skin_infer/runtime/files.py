"""Files on disk: atomic writes and finding the images to analyse under the given paths."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .images import IMAGE_SUFFIXES, UNSUPPORTED_SUFFIXES


def default_mode(directory: bool = False) -> int:
    """The permissions a plain open()/mkdir() would give under the current umask (mkstemp's 0600 is too tight
    for results and bundles that others read)."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def atomic_write(path: str | Path, data: bytes | str) -> Path:
    """Write a file so readers see the old content or the new, never half of it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, default_mode())
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _wanted(name: str) -> bool:
    suffix = os.path.splitext(name)[1].lower()
    return suffix in IMAGE_SUFFIXES or suffix in UNSUPPORTED_SUFFIXES


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a symlink loop: not a folder to list
        return False


def collect_inputs(paths: list[str], recursive: bool = False) -> tuple[list[str], list[str]]:
    """The image files under ``paths`` (files given directly are always kept, so their errors are reported).

    Folders yield files with image suffixes (supported ones and known unsupported ones, which are then
    reported); with ``recursive``, sub-folders too, following symlinks but never into a loop.
    Returns (files, warnings).
    """
    files, warnings = [], []
    for given in paths:
        if not os.path.isdir(given):
            files.append(given)
            continue
        if not recursive:
            # Anything with an image suffix that is not a folder is kept: a FIFO, a device or a broken or
            # looping symlink then becomes that file's error row instead of being silently skipped.
            with os.scandir(given) as entries:
                files += sorted(os.path.join(given, e.name) for e in entries if _wanted(e.name) and not _is_dir(e))
            continue
        seen: set[tuple[int, int]] = set()
        for root, dirs, names in os.walk(given, followlinks=True):
            st = os.stat(root)
            if (st.st_dev, st.st_ino) in seen:
                warnings.append(f"{root}: skipped, a symlink loop leads back to a folder already scanned")
                dirs[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            dirs.sort()
            files += [os.path.join(root, n) for n in sorted(names) if _wanted(n)]
    return files, warnings
