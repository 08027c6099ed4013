import os
from pathlib import Path

import pytest
from builders import make_classifier_bundle

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SKIN_INFER_SHARED", REPO.parent / "shared")).resolve()
FACES = SHARED / "data" / "faces"
PHOTOS = sorted(p for p in (FACES / "photos").iterdir() if p.suffix in {".jpg", ".png", ".bmp"})
NO_FACE = sorted((FACES / "no_face").iterdir())
YUNET = SHARED / "weights" / "yunet"
HAM = SHARED / "data" / "ham10000"


def pytest_configure(config):
    if not FACES.is_dir():
        raise pytest.UsageError(
            f"shared data not found at {SHARED}: set SKIN_INFER_SHARED or put shared/ beside the repo"
        )


@pytest.fixture(scope="session")
def classifier_bundle(tmp_path_factory) -> Path:
    return make_classifier_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Each test gets its own model cache, so nothing leaks in from the user's ~/.cache."""
    monkeypatch.setenv("SKIN_INFER_HOME", str(tmp_path / "cache"))
