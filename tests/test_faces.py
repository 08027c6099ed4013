"""Face finding on the real photos: YuNet (real weights from shared/) and OpenCV's Haar cascade."""

import numpy as np
import pytest
from dlib_truth import score
from shared_data import FACES, NO_FACE, PHOTOS, YUNET

from skin_infer.runtime import HaarDetector, YuNetDetector, make_finder, read_image
from skin_infer.runtime.errors import BundleError


@pytest.fixture(scope="module", params=["yunet_s_640_640.onnx", "yunet_s_dynamic.onnx"])
def yunet(request):
    return YuNetDetector(YUNET / request.param, device="cpu", threads=2)


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.name)
def test_yunet_finds_a_face_on_every_photo(yunet, photo):
    image = read_image(photo)
    faces, skin = yunet.detect(image)
    assert faces and skin is None
    h, w = image.shape[:2]
    for face in faces:
        x, y, bw, bh = face.box
        assert 0 <= x < x + bw <= w and 0 <= y < y + bh <= h
        left_eye, right_eye, nose, mouth_left, mouth_right = face.landmarks
        assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
        assert max(left_eye[1], right_eye[1]) < nose[1] < max(mouth_left[1], mouth_right[1]) + 0.1 * bh


@pytest.mark.parametrize("photo", NO_FACE, ids=lambda p: p.name)
def test_yunet_finds_nothing_without_faces(yunet, photo):
    assert yunet.detect(read_image(photo))[0] == []


def test_yunet_matches_dlib_ground_truth(yunet):
    hits, found, total = score(lambda path: [f.box for f in yunet.detect(read_image(path))[0]], FACES)
    assert total == 43
    assert hits / total >= 0.85, f"recall {hits}/{total}"


def test_haar_finds_most_faces_and_no_cat():
    haar = HaarDetector()
    with_face = sum(bool(haar.detect(read_image(p))[0]) for p in PHOTOS)
    assert with_face >= 15
    assert all(haar.detect(read_image(p))[0] == [] for p in NO_FACE)


def test_auto_takes_the_shipped_models():
    """A fresh install finds faces with the YuNet it ships, parsed by the shipped parser when there is one."""
    from skin_infer.runtime.defaults import default_parser, yunet_file

    assert (
        yunet_file().parent.name == "yunet"
        and yunet_file().read_bytes() == (YUNET / "yunet_s_640_640.onnx").read_bytes()
    )
    assert make_finder("auto").name == ("segformer" if default_parser() else "yunet")
    assert make_finder("auto", YUNET / "yunet_n_640_640.onnx").model.name == "yunet_n_640_640.onnx"


def test_without_shipped_models_auto_takes_the_cache_then_haar(tmp_path, monkeypatch):
    """An install stripped of models/ (a custom build): the cache, then Haar, which ships inside OpenCV."""
    from skin_infer.runtime import defaults

    monkeypatch.setattr(defaults, "_shipped", lambda *parts: None)
    assert make_finder("auto").name == "haar"
    with pytest.raises(BundleError, match="skin models pull yunet"):
        make_finder("yunet")
    cache = tmp_path / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "face_detection_yunet_2023mar.onnx").write_bytes((YUNET / "yunet_s_640_640.onnx").read_bytes())
    monkeypatch.setenv("SKIN_INFER_HOME", str(cache))
    assert make_finder("auto").name == "yunet"


def test_a_missing_parser_model_is_named():
    with pytest.raises(BundleError, match="does not exist"):
        make_finder("yunet", "no/such/file.onnx")


def test_tiny_image_has_no_face():
    assert YuNetDetector(YUNET / "yunet_s_dynamic.onnx", "cpu").detect(np.zeros((10, 10, 3), np.uint8))[0] == []
