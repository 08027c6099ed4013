"""Colour measures on real photos: faces cut by every edge and corner, tiny and huge faces, one face under five
lights (issue 15). Every finder, since the colour skin model (no parser) and the parser each place regions."""

import cv2
import numpy as np
import pytest
from shared_data import FACES, YUNET

from skin_infer import Analyzer
from skin_infer.runtime.light import relight

PORTRAIT = FACES / "photos" / "Tom_Cruise_avp_2014_4.jpg"
LIGHTS = {"warm": (1.25, 1.0, 0.75), "cool": (0.8, 1.0, 1.25), "green": (0.85, 1.15, 0.85), "-1 EV": (0.5,) * 3}
FINDERS = {
    "parser": {},
    "yunet (colour skin model)": {"parser": "yunet", "parser_model": YUNET / "yunet_s_640_640.onnx"},
    "haar (colour skin model)": {"parser": "haar"},
}


@pytest.fixture(scope="module", params=list(FINDERS))
def analyzer(request):
    return Analyzer(model=None, threads=2, **FINDERS[request.param])


@pytest.fixture(scope="module")
def portrait():
    image = cv2.imread(str(PORTRAIT), cv2.IMREAD_COLOR)
    [face] = Analyzer(model=None, threads=2, channels="BGR")(image).faces
    return image, face.box


def _check(result) -> None:
    assert result.ok, result.error
    for region in result.regions:
        m = region.measures
        if m is None:
            continue
        assert m["ita_deg"] is None or -90 < m["ita_deg"] < 90, (result.file, region.name, m)
        assert m["pixels"] > 0 and m["lab_l_iqr"] >= 0


def _cut(image, box, side: str, share: float):
    """The photo cropped so that ``share`` of the face box lies beyond ``side`` ("left", "top left", ...)."""
    x, y, w, h = box
    x0, y0, x1, y1 = 0, 0, image.shape[1], image.shape[0]
    if "left" in side:
        x0 = x + round(share * w)
    if "right" in side:
        x1 = x + w - round(share * w)
    if "top" in side:
        y0 = y + round(share * h)
    if "bottom" in side:
        y1 = y + h - round(share * h)
    return image[y0:y1, x0:x1]


SIDES = ["left", "right", "top", "bottom", "top left", "top right", "bottom left", "bottom right"]


def test_faces_cut_by_every_edge_and_corner_analyse(analyzer, portrait):
    # The colour skin model crashed when a face box reached the edge ("could not be broadcast together with shapes
    # (193,158) (192,158)"): a rounding of the working copy's boxes one pixel past the edge. Many cuts, so that
    # roundings both ways occur, on every side; and an exact cut (share 0) that leaves the face touching the edge.
    image, box = portrait
    analysed = 0
    for side in SIDES:
        for share in (0.0, 0.03, 0.07, 0.11, 0.2, 0.33):
            crop = np.ascontiguousarray(_cut(image, box, side, share))
            for scale in (1.0, 0.77, 0.53):  # the working copy's scale varies with the face's size
                sized = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                result = analyzer(sized[:, :, ::-1], name=f"{side} {share} {scale}")
                _check(result)
                analysed += bool(result.faces)
    assert analysed > 60  # most cut faces are still found, and then measured


def test_tiny_and_huge_faces_analyse(analyzer, portrait):
    image, _ = portrait
    tiny = np.full((900, 1200, 3), 90, np.uint8)
    small = cv2.resize(image, None, fx=0.12, fy=0.12, interpolation=cv2.INTER_AREA)
    tiny[400 : 400 + small.shape[0], 600 : 600 + small.shape[1]] = small
    for picture in (tiny, small, cv2.resize(image, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)):
        _check(analyzer(picture[:, :, ::-1]))


@pytest.mark.parametrize("photo", ["Tom_Cruise_avp_2014_4.jpg", "fairface_Latino_aligned.jpg"])
def test_one_face_under_five_lights_keeps_its_tone_and_colour(photo):
    analyzer = Analyzer(model=None, threads=2, channels="BGR", light="scene")  # the option, not the default
    image = cv2.imread(str(FACES / "photos" / photo), cv2.IMREAD_COLOR)

    def face_skin(picture):
        result = analyzer(picture)
        assert result.light.method == "scene", result.light
        return next(r.measures for r in result.regions if r.name == "face_skin")

    base = face_skin(image)
    for name, gains in LIGHTS.items():
        m = face_skin(relight(image, gains))
        assert m["skin_tone"] == base["skin_tone"], (name, m, base)
        # issue 15's targets (there: medians over many photos), here for each light
        assert abs(m["ita_deg"] - base["ita_deg"]) <= 3 and abs(m["redness_a"] - base["redness_a"]) <= 1.5, name
        # while the camera's own values moved: the correction does the work
        moved = abs(m["ita_deg_captured"] - base["ita_deg_captured"]) + abs(
            m["redness_a_captured"] - base["redness_a_captured"]
        )
        assert moved > 3, (name, m)


def _face_skin(result) -> dict:
    return next(r.measures for r in result.regions if r.name == "face_skin")


def test_redness_index_follows_acne_grades_on_real_photos():
    """Validity first: on the ACNE04 test split, faces of grades 2-3 have more red skin, against their own
    baseline, than faces of grade 0 (docs/measures.md has the full figures)."""
    import csv

    from shared_data import SHARED

    analyzer = Analyzer(model="none", threads=2)
    rows = [r for r in csv.DictReader((SHARED / "data/acne04/labels.csv").open()) if r["split"] == "test"]
    by_grade = {0: [], 2: []}
    for row in rows:
        grade = min(2, int(row["grade"]))
        if grade in by_grade:
            result = analyzer(SHARED / "data/acne04" / row["file"])
            values = [r.measures["redness_index"] for r in result.regions if r.name == "face_skin" and r.measures]
            by_grade[grade] += [v for v in values[:1] if v is not None]
    assert len(by_grade[0]) > 30 and len(by_grade[2]) > 15
    assert np.median(by_grade[2]) > np.median(by_grade[0])


@pytest.mark.parametrize("photo", ["fairface_Latino_aligned.jpg", "fairface_Black_aligned.jpg"])
def test_redness_index_survives_a_change_of_light(photo):
    """Stability second: the same face under four lights keeps its redness_index (the camera's a* moves)."""
    analyzer = Analyzer(model=None, threads=2, channels="BGR")
    image = cv2.imread(str(FACES / "photos" / photo), cv2.IMREAD_COLOR)
    base = _face_skin(analyzer(image))
    for name, gains in LIGHTS.items():
        m = _face_skin(analyzer(relight(image, gains)))
        assert abs(m["redness_index"] - base["redness_index"]) <= 1.5, (name, m["redness_index"], base)


def test_a_grayscale_photo_gets_no_colour_measures():
    image = cv2.cvtColor(cv2.imread(str(FACES / "photos" / "fairface_White_aligned.jpg")), cv2.COLOR_BGR2GRAY)
    ok, data = cv2.imencode(".jpg", image)
    result = Analyzer(model="none", threads=2)(data.tobytes())
    assert result.faces
    for region in result.regions:
        m = region.measures
        if m is None:
            continue
        assert m["ita_deg"] is None and m["skin_tone"] is None and m["redness_a"] is None, (region.name, m)
        assert m["redness_index"] is None and m["lab_l"] is not None and "no colour" in m["ita_note"]
