"""Installed versions of the packages that shape a result (recorded in manifests and benchmark rows)."""

from __future__ import annotations

from contextlib import suppress
from importlib import metadata

PACKAGES = (
    "skin-infer",
    "torch",
    "timm",
    "transformers",
    "onnx",
    "onnxruntime",
    "onnxslim",
    "numpy",
    "opencv-python-headless",
)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        with suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions
