"""Runtime targets (issue 2), measured on this machine in one run.

Run: ``pytest benchmarks/test_runtime.py -s`` (add ``--benchmark-json out.json`` to keep the figures).
Absolute times are reported, never asserted (a busy machine is not a regression); ratios measured in one
run are asserted. The cold start of `skin-infer` is measured by `skin bench` (its pipeline rows).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from builders import make_classifier_bundle
from dlib_truth import score
from shared_data import FACES, PHOTOS, YUNET

from skin_infer.runtime import (
    Analyzer,
    Classifier,
    HaarDetector,
    Pipeline,
    ResultWriter,
    SegFormerParser,
    YuNetDetector,
    read_image,
)

THREADS = 2
YUNET_S = YUNET / "yunet_s_640_640.onnx"


class KnownFaces:
    """A finder that returns faces found beforehand, so the timing holds no detector."""

    name, provider = "known", "none"

    def __init__(self, faces):
        self.faces = faces

    def detect(self, image):
        return self.faces, None


@pytest.fixture(scope="module")
def megapixel_jpeg(tmp_path_factory) -> Path:
    image = cv2.imread(str(FACES / "photos" / "Tom_Cruise_avp_2014_4.jpg"))
    scale = (1_000_000 / (image.shape[0] * image.shape[1])) ** 0.5
    path = tmp_path_factory.mktemp("mp") / "one_megapixel.jpg"
    cv2.imwrite(
        str(path),
        cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC),
        [cv2.IMWRITE_JPEG_QUALITY, 92],
    )
    return path


def test_per_photo_overhead(benchmark, megapixel_jpeg, tmp_path):
    """Decode, regions, skin mask, colour measures, preprocessing and writing, without the models' time."""
    faces, _ = YuNetDetector(YUNET_S, "cpu", THREADS).detect(read_image(megapixel_jpeg))
    tiny = Classifier(make_classifier_bundle(tmp_path / "tiny"), "cpu", THREADS)  # ~0.1 ms graph: all preprocessing
    pipeline = Pipeline(KnownFaces(faces), tiny, min_skin=0.0)
    writer = ResultWriter(tmp_path / "out.csv", [(h.name, h.labels) for h in tiny.heads])

    def one_photo():
        writer.write(pipeline.analyze(read_image(megapixel_jpeg), str(megapixel_jpeg)))

    benchmark.pedantic(one_photo, rounds=60, warmup_rounds=5)
    writer.close()
    p50 = benchmark.stats.stats.median * 1e3
    benchmark.extra_info["p50_ms"] = round(p50, 2)
    print(f"\nper-photo overhead outside the models, 1-MP JPEG: p50 {p50:.1f} ms (target <= 12 ms, issue 20)")


def test_default_face_path(benchmark, megapixel_jpeg):
    """The default path with the shipped models: YuNet, the face parser on each face, regions as masks, measures,
    no classifier. One 1-MP single-face JPEG (target p50 <= 100 ms), then per face on a group photo."""
    from skin_infer.runtime.defaults import default_parser, yunet_file

    parser = SegFormerParser(default_parser(), YuNetDetector(yunet_file(), "cpu", THREADS), "cpu", THREADS)
    pipeline = Pipeline(parser)
    benchmark.pedantic(lambda: pipeline.analyze(read_image(megapixel_jpeg), "mp"), rounds=20, warmup_rounds=3)
    p50 = benchmark.stats.stats.median * 1e3
    group = read_image(FACES / "photos" / "2008_004176.jpg")
    times = []
    for _ in range(5):
        start = time.perf_counter()
        faces = len(pipeline.analyze(group, "group").faces)
        times.append(time.perf_counter() - start)
    per_face = statistics.median(times) * 1e3 / faces
    benchmark.extra_info.update(p50_ms=round(p50, 1), group_ms_per_face=round(per_face, 1), group_faces=faces)
    print(
        f"\ndefault path (YuNet + face parser + regions + measures), 1-MP single face: p50 {p50:.1f} ms "
        f"(target <= 100 ms); group photo, {faces} faces: {per_face:.1f} ms per face"
    )


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_folder_throughput_near_model_bound(efficientnet_b0_bundles, interpolation):
    """End-to-end seconds per photo vs the models' own time on the same photos (detector + classifier calls).
    Bilinear crops are what the project's models take; OpenCV's bicubic is ~10x slower on the small crops of a
    group photo (~19 a photo here, most smaller than 20 px and upscaled to 256), and that is preprocessing."""
    detector = YuNetDetector(YUNET_S, "cpu", THREADS)
    classifier = Classifier(efficientnet_b0_bundles[interpolation], "cpu", THREADS)
    pipeline = Pipeline(detector, classifier)
    analyzer = Analyzer.from_pipeline(pipeline)
    images = [read_image(p) for p in PHOTOS]
    from skin_infer.runtime.preprocess import preprocess

    batches = []
    for image in images:
        result = pipeline.analyze(image, "x")
        crops = [image[y : y + h, x : x + w] for r in result.regions if r.predictions for x, y, w, h in [r.box]]
        batches.append(preprocess(crops, classifier.bundle.input_spec) if crops else None)

    def models_only():
        for image, batch in zip(images, batches, strict=True):
            detector.detect(image)
            if batch is not None:
                classifier.session.run(None, {"input": batch})

    def pipeline():  # what `skin-infer FOLDER` runs: decoding overlapped with analysis
        for _ in analyzer.stream([str(p) for p in PHOTOS]):
            pass

    bound, full = [], []
    for _ in range(5):  # interleaved, so both see the same machine load; the ratio is the median of the rounds'
        t = time.perf_counter()
        models_only()
        bound.append(time.perf_counter() - t)
        t = time.perf_counter()
        pipeline()
        full.append(time.perf_counter() - t)
    ratio = statistics.median(f / b for f, b in zip(full, bound, strict=True))
    print(
        f"\nfolder of {len(PHOTOS)} photos, {interpolation} crops: pipeline {statistics.median(full):.3f} s, models "
        f"alone {statistics.median(bound):.3f} s, ratio {ratio:.3f} (median of 5 paired rounds; target <= 1.10)"
    )
    # The target is reported, not gated: on 2 cores the models use both, so the per-region work (measures, crop
    # resizing) cannot hide behind them, and this VM moves the ratio by +-0.06 from run to run. The gate catches
    # what breaks the pipeline's shape: a second pass over the models, per-region work that grows several-fold.
    assert ratio <= 1.5


@pytest.mark.parametrize("name", ["yunet", "haar"])
def test_face_detection_figures(name):
    detector = YuNetDetector(YUNET_S, "cpu", THREADS) if name == "yunet" else HaarDetector()
    photos_with = sum(bool(detector.detect(read_image(p))[0]) for p in PHOTOS)
    no_face = sorted((FACES / "no_face").iterdir())
    false_photos = sum(bool(detector.detect(read_image(p))[0]) for p in no_face)
    hits, found, total = score(lambda path: [f.box for f in detector.detect(read_image(path))[0]], FACES)
    print(
        f"\n{name}: face on {photos_with}/{len(PHOTOS)} photos, on {false_photos}/{len(no_face)} no-face photos; "
        f"vs dlib boxes (IoU>=0.3): precision {hits}/{found} = {hits / max(found, 1):.2f}, "
        f"recall {hits}/{total} = {hits / total:.2f}"
    )
    if name == "yunet":
        assert photos_with == len(PHOTOS) and false_photos == 0
    np.testing.assert_(total == 43)
