"""The analysis of one photo: regions, skin masks, colour measures, batched classification, explanations."""

import cv2
import numpy as np
import pytest
from builders import make_classifier_bundle, make_parser_bundle
from shared_data import FACES, NO_FACE, YUNET
from skimage.color import rgb2lab

from skin_infer.runtime import Analyzer, Classifier, HaarDetector, SegFormerParser, YuNetDetector, read_image
from skin_infer.runtime.models import NoFaces
from skin_infer.runtime.preprocess import preprocess
from skin_infer.runtime.regions import REGION_NAMES, place_regions
from skin_infer.runtime.skin import colour_measures, skin_tone

PORTRAIT = FACES / "photos" / "fairface_Black_aligned.jpg"


@pytest.fixture(scope="module")
def yunet():
    return YuNetDetector(YUNET / "yunet_s_640_640.onnx", device="cpu", threads=2)


def test_ita_of_known_colours():
    # Against scikit-image's independent CIELAB conversion, for a light and a dark skin colour.
    for rgb in ((224, 184, 160), (92, 58, 42)):
        lab = rgb2lab(np.array([[rgb]], np.uint8))[0, 0]
        m = colour_measures(np.array([[rgb[::-1]]], np.uint8), np.ones((1, 1), np.uint8))
        assert (m["lab_l"], m["redness_a"], m["lab_b"]) == pytest.approx(tuple(lab), abs=0.2)
        assert m["ita_deg"] == pytest.approx(np.degrees(np.arctan((lab[0] - 50) / lab[2])), abs=0.5)
    assert colour_measures(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8)) is None
    assert [skin_tone(a) for a in (60, 45, 30, 20, 0, -40)] == [
        "very light",
        "light",
        "intermediate",
        "tan",
        "brown",
        "dark",
    ]


def test_regions_sit_where_faces_are():
    landmarks = np.array([[100, 100], [160, 100], [130, 135], [108, 165], [152, 165]], np.float32)
    regions = place_regions((70, 40, 120, 160), landmarks, 400, 400)
    assert list(regions) == list(REGION_NAMES)
    centre = {n: (b[0] + b[2] / 2, b[1] + b[3] / 2) for n, b in regions.items()}
    assert centre["forehead"][1] < centre["nose"][1] < centre["chin"][1]
    assert centre["right_cheek"][0] < centre["nose"][0] < centre["left_cheek"][0]  # subject's left = image right
    # clipped at the border, and dropped when entirely outside
    near_top = place_regions((0, 0, 50, 50), landmarks - 60, 60, 60)
    assert near_top["forehead"] == (31, 0, 29, 19)
    assert "chin" not in near_top  # entirely below the image


def test_face_photo_regions_and_measures(yunet):
    image = read_image(PORTRAIT)
    result = Analyzer(yunet).analyze(image, str(PORTRAIT)).result
    assert result["status"] == "ok" and result["face_found"] and len(result["faces"]) == 1
    names = [r["name"] for r in result["regions"]]
    assert names == list(REGION_NAMES)
    for region in result["regions"]:
        assert region["face_index"] == 0 and region["predictions"] == {}
        if region["name"] != "face_skin":
            assert region["skin_fraction"] > 0.6, region
    assert 0.3 < result["regions"][-1]["skin_fraction"] < 0.98  # the box holds eyes, lips, background too
    assert result["regions"][-1]["measures"]["skin_tone"] in {"tan", "brown", "dark"}


def test_skin_tone_follows_the_person(yunet):
    ita = {}
    for group in ("White", "Black"):
        path = FACES / "photos" / f"fairface_{group}_aligned.jpg"
        result = Analyzer(yunet).analyze(read_image(path), str(path)).result
        ita[group] = next(r for r in result["regions"] if r["name"] == "face_skin")["measures"]["ita_deg"]
    assert ita["White"] > ita["Black"] + 20


def test_no_face_is_one_whole_image_region(yunet):
    path = NO_FACE[0]
    result = Analyzer(yunet).analyze(read_image(path), str(path)).result
    assert not result["face_found"] and result["faces"] == []
    [region] = result["regions"]
    assert region["name"] == "whole_image" and region["face_index"] is None
    assert region["box"] == [0, 0, result["width"], result["height"]]


def test_all_crops_go_through_one_batched_call(classifier_bundle, yunet):
    classifier = Classifier(classifier_bundle, device="cpu")
    calls = []
    real_run = classifier.session.run
    classifier.session.run = lambda names, feeds: calls.append(len(feeds["input"])) or real_run(names, feeds)
    path = FACES / "photos" / "2008_004176.jpg"  # a group photo
    result = Analyzer(yunet, classifier, min_skin=0.0).analyze(read_image(path), str(path)).result
    assert len(result["faces"]) >= 5
    assert calls == [len(result["regions"])]
    for region in result["regions"]:
        pred = region["predictions"]["dx"]
        assert sum(pred["probs"].values()) == pytest.approx(1.0, abs=1e-3)
        assert pred["label"] == max(pred["probs"], key=pred["probs"].get) == pred["top_k"][0][0]
        assert len(pred["top_k"]) == 3


def test_classifier_matches_preprocessed_onnx_run(classifier_bundle):
    classifier = Classifier(classifier_bundle, device="cpu")
    crops = [read_image(PORTRAIT), read_image(NO_FACE[0])]
    logits, cams = classifier.run(crops, with_cam=True)
    direct = classifier.session.run(["logits"], {"input": preprocess(crops, classifier.bundle.input_spec)})[0]
    assert np.allclose(logits, direct) and cams.shape == (2, 7, 16, 16)
    # The CAM's spatial mean plus the head's bias is the logit: global average pooling before a linear head.
    # A black image gives zero features after the ReLU, so its logits are the bias alone.
    bias = classifier.session.run(["logits"], {"input": np.zeros((1, 3, 32, 32), np.float32)})[0]
    assert np.allclose(cams.mean(axis=(2, 3)) + bias, logits, atol=1e-4)


def test_multi_head_and_ordinal(tmp_path):
    bundle = make_classifier_bundle(
        tmp_path / "mh",
        heads=(("condition", ("acne", "clear", "rosacea")), ("severity", ("0", "1", "2", "3", "4"))),
        ordinal=("severity",),
    )
    classifier = Classifier(bundle, device="cpu")
    logits, _ = classifier.run([read_image(PORTRAIT)])
    [pred] = classifier.predictions(logits)
    assert set(pred) == {"condition", "severity"}
    assert list(pred["condition"]["probs"]) == ["acne", "clear", "rosacea"]
    severity = pred["severity"]
    expected = sum(i * p for i, p in enumerate(severity["probs"].values()))
    assert severity["expected"] == pytest.approx(expected, abs=1e-2) and "expected" not in pred["condition"]


def test_too_little_skin_is_reported_not_classified(classifier_bundle, yunet):
    result = (
        Analyzer(yunet, Classifier(classifier_bundle, "cpu"), min_skin=1.01).analyze(read_image(PORTRAIT), "p").result
    )
    assert all(r["predictions"] == {} and "too little skin" in r["note"] for r in result["regions"])


def test_explain_gives_a_heatmap_per_classified_region(classifier_bundle, yunet):
    analysis = Analyzer(yunet, Classifier(classifier_bundle, "cpu"), min_skin=0.0, explain=True).analyze(
        read_image(PORTRAIT), "p"
    )
    assert set(analysis.cams) == set(range(len(analysis.result["regions"])))
    for cam in analysis.cams.values():
        assert cam.shape == (16, 16) and cam.min() >= 0 and cam.max() == pytest.approx(1.0)


def test_whole_image_is_classified_even_without_skin_colour(classifier_bundle):
    blue = np.full((64, 64, 3), (200, 50, 0), np.uint8)
    result = Analyzer(NoFaces(), Classifier(classifier_bundle, "cpu")).analyze(blue, "blue.png").result
    [region] = result["regions"]
    assert region["skin_fraction"] == 0 and region["measures"] is None and "dx" in region["predictions"]


@pytest.mark.parametrize("bias,expected", [(10.0, 1.0), (-10.0, 0.0)])
def test_segformer_parser_mask_drives_the_skin(tmp_path, yunet, bias, expected):
    parser = SegFormerParser(make_parser_bundle(tmp_path / "parser", bias), yunet, device="cpu")
    image = read_image(PORTRAIT)
    faces, skin = parser.detect(image)
    assert len(faces) == 1 and skin.shape == image.shape[:2]
    result = Analyzer(parser).analyze(image, "p").result
    for region in result["regions"]:
        assert region["skin_fraction"] == expected


def test_haar_regions_come_from_the_box():
    image = read_image(FACES / "photos" / "astronaut.png")
    result = Analyzer(HaarDetector()).analyze(image, "a").result
    assert len(result["faces"]) == 1 and "landmarks" not in result["faces"][0]
    assert [r["name"] for r in result["regions"]] == list(REGION_NAMES)
    # the face is light-skinned: the adaptive mask keeps most of the cheeks
    assert next(r for r in result["regions"] if r["name"] == "left_cheek")["skin_fraction"] > 0.7
    assert cv2.countNonZero(np.uint8(Analyzer(HaarDetector()).analyze(image, "a").skin)) > 3000


@pytest.mark.parametrize(
    "spec",
    [
        {"size": [32, 48], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "resize": "stretch"},
        {
            "size": [32, 32],
            "color": "BGR",
            "layout": "NHWC",
            "scale": 1.0,
            "mean": [10, 20, 30],
            "std": [2, 3, 4],
            "resize": "shorter_side_center_crop",
            "crop_pct": 0.9,
            "interpolation": "bicubic",
        },
    ],
)
def test_preprocess_matches_the_written_formula(spec):
    from skin_infer.runtime.preprocess import resize_image

    images = [read_image(PORTRAIT), read_image(NO_FACE[0])]
    expected = np.stack([resize_image(im, spec) for im in images]).astype(np.float64)
    if spec.get("color", "RGB") == "RGB":
        expected = expected[..., ::-1]
    expected = (expected * spec.get("scale", 1 / 255) - np.array(spec["mean"])) / np.array(spec["std"])
    if spec.get("layout", "NCHW") == "NCHW":
        expected = expected.transpose(0, 3, 1, 2)
    batch = preprocess(images, spec)
    assert batch.dtype == np.float32 and batch.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(batch, expected, atol=1e-4)


def test_centre_crop_geometry():
    from skin_infer.runtime.preprocess import resize_image

    # timm's eval transform at 224 / 0.875: shorter side to 256, then the central 224x224.
    image = np.zeros((300, 600, 3), np.uint8)
    image[:, 300:] = 255
    out = resize_image(image, {"size": [224, 224], "resize": "shorter_side_center_crop", "crop_pct": 0.875})
    assert out.shape == (224, 224, 3)
    assert (out[:, :100] == 0).all() and (out[:, 124:] == 255).all()
