"""Where the shared data and weights are: ``SKIN_INFER_SHARED``, by default ``../shared`` beside the repo."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SKIN_INFER_SHARED", REPO.parent / "shared")).resolve()
FACES = SHARED / "data" / "faces"
PHOTOS = sorted(p for p in (FACES / "photos").glob("*") if p.suffix in {".jpg", ".png", ".bmp"})  # [] without it
NO_FACE = sorted((FACES / "no_face").glob("*"))
YUNET = SHARED / "weights" / "yunet"
HAM = SHARED / "data" / "ham10000"
