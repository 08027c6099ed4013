"""The bundle contract: a valid bundle loads; anything inconsistent is refused with a clear message."""

import json
import shutil

import pytest
from builders import make_classifier_bundle

from skin_infer.runtime import BundleError, Classifier, load_bundle
from skin_infer.runtime.bundle import (
    save_manifest,  # noqa: E402
    write_manifest,
)


@pytest.fixture
def bundle(tmp_path, classifier_bundle):
    return shutil.copytree(classifier_bundle, tmp_path / "bundle")


def _edit_manifest(bundle, **changes):
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    save_manifest(bundle, manifest)  # as a careless exporter would write it: with a digest of what it wrote


def test_valid_bundle_loads(bundle):
    loaded = load_bundle(bundle, kind="classifier")
    assert loaded.kind == "classifier" and loaded.model_path.is_file()
    assert loaded.manifest["files"]["model.onnx"]["size"] == loaded.model_path.stat().st_size
    assert load_bundle(bundle / "manifest.json").path == bundle


def _refused(bundle, *words, **kwargs):
    with pytest.raises(BundleError) as info:
        Classifier(bundle, device="cpu", **kwargs)
    for word in words:
        assert word in str(info.value)
    return str(info.value)


def test_missing_folder_and_manifest(tmp_path):
    _refused(tmp_path / "nope", "not a bundle directory")
    (tmp_path / "empty").mkdir()
    _refused(tmp_path / "empty", "no manifest.json")


def test_missing_model_file(bundle):
    (bundle / "model.onnx").unlink()
    _refused(bundle, "model.onnx", "missing")


def test_checksum_mismatch(bundle):
    data = bytearray((bundle / "model.onnx").read_bytes())
    data[-1] ^= 0xFF
    (bundle / "model.onnx").write_bytes(bytes(data))
    _refused(bundle, "checksum mismatch")


def test_unknown_format_version(bundle):
    _edit_manifest(bundle, format_version=99)
    _refused(bundle, "format_version 99", "upgrade skin-infer")


def test_wrong_kind(bundle):
    with pytest.raises(BundleError, match="classifier bundle, but a face-parser"):
        load_bundle(bundle, kind="face-parser")


def test_manifest_not_json(bundle):
    (bundle / "manifest.json").write_text("{ not json")
    _refused(bundle, "not valid JSON")


def test_input_name_disagrees_with_graph(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["input"]["name"] = "images"
    _edit_manifest(bundle, input=manifest["input"])
    _refused(bundle, "'images' is not in the graph")


def test_input_size_disagrees_with_graph(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["input"]["size"] = [224, 224]
    _edit_manifest(bundle, input=manifest["input"])
    _refused(bundle, "input shape", "disagrees")


def test_label_count_disagrees_with_logits(tmp_path):
    bundle = make_classifier_bundle(tmp_path / "b")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["heads"][0]["labels"] = manifest["heads"][0]["labels"][:5]
    manifest.pop("files")
    write_manifest(bundle, manifest, ["model.onnx"])
    _refused(bundle, "7 logits", "5 labels")


def test_unknown_preprocessing_is_refused(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["input"]["resize"] = "pad_and_crop"
    _edit_manifest(bundle, input=manifest["input"])
    _refused(bundle, "input.resize 'pad_and_crop'")


def test_colour_constancy_is_an_input_option_that_survives_the_manifest():
    """``input.constancy: shades_of_gray`` takes a dermoscope's colour cast out of real images: two sources'
    images under their own casts come out with equal channel p-norms, the same way after a resize (training keeps
    the resized image, the runtime resizes the photo), and the manifest round-trips it; unknown values are refused."""
    import cv2
    import numpy as np
    from shared_data import HAM

    from skin_infer.runtime import read_image
    from skin_infer.runtime.preprocess import InputSpec, resize_image, shades_of_gray

    spec = InputSpec.timm_eval(160, (0.5,) * 3, (0.5,) * 3, constancy="shades_of_gray")
    assert InputSpec.from_manifest(spec.to_manifest()) == spec
    image = read_image(next((HAM / "nv").glob("*.jpg")))
    warm = np.clip(image.astype(np.float32) * [0.8, 1.0, 1.2], 0, 255).astype(np.uint8)  # BGR: a warm lamp
    for picture in (image, warm):
        out = resize_image(picture, spec).astype(np.float64) / 255
        norms = np.mean(out**6, axis=(0, 1)) ** (1 / 6)
        assert norms.max() - norms.min() < 0.01, norms
    plain = resize_image(image, InputSpec.timm_eval(160, (0.5,) * 3, (0.5,) * 3))
    twice = shades_of_gray(resize_image(cv2.resize(image, (300, 300)), spec))
    assert np.abs(twice.astype(int) - resize_image(image, spec).astype(int)).mean() < 2
    assert np.abs(plain.astype(int) - resize_image(image, spec).astype(int)).mean() > 2  # it did change the image
    with pytest.raises(ValueError, match="constancy"):
        InputSpec.from_manifest({**spec.to_manifest(), "constancy": "retinex"})
