"""The analysis of one photo: regions, skin masks, colour measures, batched classification, explanations."""

import cv2
import numpy as np
import pytest
from builders import make_classifier_bundle, make_parser_bundle
from shared_data import FACES, HAM, NO_FACE, YUNET

from skin_infer.runtime import Classifier, HaarDetector, Pipeline, SegFormerParser, YuNetDetector, read_image
from skin_infer.runtime.finders import NoFaces
from skin_infer.runtime.preprocess import preprocess
from skin_infer.runtime.regions import REGION_NAMES

PORTRAIT = FACES / "photos" / "fairface_Black_aligned.jpg"


@pytest.fixture(scope="module")
def yunet():
    return YuNetDetector(YUNET / "yunet_s_640_640.onnx", device="cpu", threads=2)


def test_face_photo_regions_and_measures(yunet):
    image = read_image(PORTRAIT)
    result = Pipeline(yunet).analyze(image, str(PORTRAIT)).to_dict()
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
        result = Pipeline(yunet).analyze(read_image(path), str(path)).to_dict()
        ita[group] = next(r for r in result["regions"] if r["name"] == "face_skin")["measures"]["ita_deg"]
    assert ita["White"] > ita["Black"] + 20


def test_no_face_is_one_whole_image_region(yunet):
    path = NO_FACE[0]
    result = Pipeline(yunet).analyze(read_image(path), str(path)).to_dict()
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
    result = Pipeline(yunet, classifier, min_skin=0.0).analyze(read_image(path), str(path)).to_dict()
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
    assert list(pred["condition"].probs) == ["acne", "clear", "rosacea"]
    severity = pred["severity"]
    expected = sum(i * p for i, p in enumerate(severity.probs.values()))
    assert severity.expected == pytest.approx(expected, abs=1e-2) and pred["condition"].expected is None
    assert "expected" not in pred["condition"].to_dict() and "expected" in severity.to_dict()


def test_too_little_skin_is_reported_not_classified(classifier_bundle, yunet):
    result = Pipeline(yunet, Classifier(classifier_bundle, "cpu"), min_skin=1.01).analyze(read_image(PORTRAIT), "p")
    assert all(r.predictions == {} and "too little skin" in r.note for r in result.regions)


def test_explain_gives_a_heatmap_per_classified_region(classifier_bundle, yunet):
    analysis = Pipeline(yunet, Classifier(classifier_bundle, "cpu"), min_skin=0.0, explain=True).analyze(
        read_image(PORTRAIT), "p"
    )
    assert set(analysis.cams) == set(range(len(analysis.regions)))
    for cam in analysis.cams.values():
        assert cam.shape == (16, 16) and cam.min() >= 0 and cam.max() == pytest.approx(1.0)


def test_whole_image_is_classified_even_without_skin_colour(classifier_bundle):
    blue = np.full((64, 64, 3), (200, 50, 0), np.uint8)
    result = Pipeline(NoFaces(), Classifier(classifier_bundle, "cpu")).analyze(blue, "blue.png").to_dict()
    [region] = result["regions"]
    assert region["skin_fraction"] == 0 and region["measures"] is None and "dx" in region["predictions"]


@pytest.mark.parametrize("bias,expected", [(10.0, 1.0), (-10.0, 0.0)])
def test_segformer_parser_mask_drives_the_skin(tmp_path, yunet, bias, expected):
    # the toy parser labels every pixel skin (or nothing): no nose or eyes, so confirmation is off here
    parser = SegFormerParser(make_parser_bundle(tmp_path / "parser", bias), yunet, device="cpu", confirm=False)
    image = read_image(PORTRAIT)
    faces, skin = parser.detect(image)
    assert len(faces) == 1 and skin.shape == image.shape[:2] and skin.mean() == pytest.approx(expected, abs=0.6)
    result = Pipeline(parser).analyze(image, "p").to_dict()
    regions = {r["name"]: r for r in result["regions"]}
    # all skin: the face's skin is its whole neighbourhood; no brows, eyes or mouth, so no other region is placed
    assert regions["face_skin"]["skin_fraction"] == expected
    for name in ("forehead", "left_cheek", "right_cheek", "nose", "chin"):
        assert regions[name]["box"] is None and regions[name]["note"].startswith("not visible")


def test_haar_regions_come_from_the_box():
    image = read_image(FACES / "photos" / "astronaut.png")
    result = Pipeline(HaarDetector()).analyze(image, "a").to_dict()
    assert len(result["faces"]) == 1 and "landmarks" not in result["faces"][0]
    assert [r["name"] for r in result["regions"]] == list(REGION_NAMES)
    # the face is light-skinned: the adaptive mask keeps most of the cheeks
    assert next(r for r in result["regions"] if r["name"] == "left_cheek")["skin_fraction"] > 0.7
    assert cv2.countNonZero(np.uint8(Pipeline(HaarDetector()).analyze(image, "a").skin)) > 3000


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
    from skin_infer.runtime.preprocess import InputSpec, resize_image

    typed = InputSpec.from_manifest(spec)
    assert InputSpec.from_manifest(typed.to_manifest()) == typed
    images = [read_image(PORTRAIT), read_image(NO_FACE[0])]
    expected = np.stack([resize_image(im, typed) for im in images]).astype(np.float64)
    if spec.get("color", "RGB") == "RGB":
        expected = expected[..., ::-1]
    expected = (expected * spec.get("scale", 1 / 255) - np.array(spec["mean"])) / np.array(spec["std"])
    if spec.get("layout", "NCHW") == "NCHW":
        expected = expected.transpose(0, 3, 1, 2)
    batch = preprocess(images, typed)
    assert batch.dtype == np.float32 and batch.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(batch, expected, atol=1e-4)


def test_a_batch_resized_on_every_core_is_the_one_resized_in_order():
    """Batches of crops are resized on a thread pool: each crop's input is the one resized alone, in the order
    given."""
    import os

    from skin_infer.runtime import preprocess as module
    from skin_infer.runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD, POOLED_PIXELS, InputSpec

    image = read_image(PORTRAIT)
    h, w = image.shape[:2]
    crops = [image[y : y + h // 3, x : x + w // 4] for y in range(0, h - h // 3, h // 9) for x in (0, w // 2)]
    crops += [image[:9, :12], image]  # a tiny crop upscaled, the whole photo downscaled
    spec = InputSpec.timm_eval(224, IMAGENET_MEAN, IMAGENET_STD, interpolation="bicubic")
    assert len(crops) * 224 * 224 >= POOLED_PIXELS
    expected = [preprocess([c], spec)[0] for c in crops]
    if module._pool is not None:  # made by an earlier test: this batch must make its own
        module._pool[1].shutdown()
        module._pool = None
    batch = preprocess(crops, spec)
    assert all(np.array_equal(b, e) for b, e in zip(batch, expected, strict=True))
    if len(os.sched_getaffinity(0)) > 1:  # the batch went through the pool, not the one-thread path
        assert module._pool is not None and module._pool[0] == os.getpid()


def test_a_new_stage_is_one_class_added_to_the_list(yunet):
    """The extension point the architecture doc promises: a stage reads what earlier stages filled in (here
    each region's skin on the working copy) and adds its own measure, which reaches the JSON."""
    from skin_infer.runtime.frame import crop

    class MeanBrightness:
        timing = "regions"

        def __call__(self, frame):
            for index, (box, mask) in frame.skin_of.items():
                pixels = crop(frame.work, box)[mask > 0]
                frame.regions[index].measures["skin_brightness"] = round(float(pixels.mean()), 1)

    pipeline = Pipeline(yunet)
    pipeline.stages.insert([type(s).__name__ for s in pipeline.stages].index("MeasureRegions") + 1, MeanBrightness())
    result = pipeline.analyze(read_image(PORTRAIT), "p").to_dict()
    values = {r["name"]: r["measures"]["skin_brightness"] for r in result["regions"]}
    assert set(values) == set(REGION_NAMES) and all(20 < v < 235 for v in values.values())
    assert result["timings_ms"]["regions"] > 0


def test_the_runtime_has_no_import_circle():
    """Module-level imports between runtime modules form no cycle (types-only imports under TYPE_CHECKING and
    imports deferred into functions are not module-level)."""
    import ast
    from pathlib import Path

    import skin_infer.runtime as runtime

    folder = Path(runtime.__file__).parent
    graph = {}
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text())
        graph[path.stem] = {
            (node.module or "").split(".")[0] or alias.name
            for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.level == 1
            for alias in node.names
        }
    state: dict[str, int] = {}

    def visit(module, trail):
        if state.get(module) == 1:
            raise AssertionError("import circle: " + " -> ".join([*trail, module]))
        if state.get(module) == 2 or module not in graph:
            return
        state[module] = 1
        for other in sorted(graph[module]):
            visit(other, [*trail, module])
        state[module] = 2

    for module in sorted(graph):
        visit(module, [])
    assert "frame" in graph and graph["frame"] == set()  # the shared state depends on nothing at run time


def test_a_model_starts_when_a_photo_first_needs_it():
    """Cold start pays only for what the photo needs: a face photo never starts the lesion model's session (nor
    the domain model's); the first dermoscopy image does, and gets its label."""
    from skin_infer.runtime import Analyzer

    analyzer = Analyzer()
    lesion = next(c for c in analyzer.classifiers if c.domain == "dermoscopy")
    face_models = [m for m in [*analyzer.classifiers, *analyzer.detectors] if m.domain == "face"]
    assert lesion.provider == "CPUExecutionProvider" and not lesion.loaded
    result = analyzer(PORTRAIT)
    assert result.faces and not lesion.loaded and all(m.loaded for m in face_models)
    image = next((HAM / "nv").glob("*.jpg"))
    [region] = analyzer(image).regions
    assert lesion.loaded and "dx" in region.predictions
