"""Writing a bundle directory all at once: built in a temporary folder beside the target, then renamed."""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from ..runtime.files import default_mode
from ..versions import package_versions


class ExportError(RuntimeError):
    """An export cannot be done or failed its checks; the message names the input and the numbers."""


def producer(**extra) -> dict:
    return {**package_versions(), "python": platform.python_version(), **extra}


@contextmanager
def staged_bundle(out: Path):
    """Yield a temporary folder; on success it replaces ``out``, on failure it is removed and ``out`` is untouched."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    os.chmod(stage, default_mode(directory=True))
    try:
        yield stage
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            stage.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            stage.rename(out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
