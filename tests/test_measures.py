"""Pure units that need no shared data: region placement, colour measures, preprocessing geometry."""

import cv2
import numpy as np
import pytest
from skimage.color import rgb2lab

from skin_infer.runtime import light
from skin_infer.runtime.light import NO_CORRECTION, Light, estimate, relight
from skin_infer.runtime.preprocess import InputSpec, resize_image
from skin_infer.runtime.regions import REGION_NAMES, place_regions
from skin_infer.runtime.skin import _lab, colour_measures, quantiles, skin_tone


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


@pytest.mark.parametrize("shape", [(1,), (2,), (7, 3), (4096, 3), (1001,), (5, 2)])
def test_quantiles_are_numpys_percentiles(shape):
    values = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    for q in (50, (25, 50, 75), 90):
        assert quantiles(values, q) == pytest.approx(np.percentile(values, q, axis=0), abs=1e-6)


def test_lab_is_opencvs_and_scikit_images_cielab():
    # every 8-bit colour of a 64-level cube, dark and saturated corners included
    levels = np.linspace(0, 255, 64).astype(np.uint8)
    bgr = np.stack(np.meshgrid(levels, levels, levels), axis=-1).reshape(-1, 3)
    lab = _lab(light.to_linear(bgr))
    opencv = cv2.cvtColor(light.to_linear(bgr).reshape(-1, 1, 3), cv2.COLOR_LBGR2Lab).reshape(-1, 3)
    assert np.abs(lab - opencv).max() < 1e-3
    assert np.abs(lab - rgb2lab(bgr[None, :, ::-1])[0]).max() < 0.1


def _measures(bgr_pixels, light=NO_CORRECTION):
    image = np.array([bgr_pixels], np.uint8)
    return colour_measures(image, np.ones(image.shape[:2], np.uint8), light)


def test_ita_is_null_where_it_is_undefined_and_always_in_range():
    # b* <= 0 (a bluish or neutral median): ITA would leave its range (the old atan2 gave up to 180): null + note.
    # White's b* is 0 give or take rounding: the old code called it "very light".
    for bgr in ((200, 180, 170), (128, 128, 128), (255, 255, 255)):
        m = _measures([bgr] * 10)
        assert m["ita_deg"] is None and m["skin_tone"] is None and "b* < 1" in m["ita_note"], (bgr, m)
        assert m["ita_deg_captured"] is None and m["redness_a"] is not None
    rng = np.random.default_rng(0)
    for pixels in rng.integers(0, 256, (300, 50, 3)):
        m = _measures(pixels)
        assert m["ita_deg"] is None or -90 < m["ita_deg"] < 90
        assert (m["ita_deg"] is None) == ("ita_note" in m)
    # b* a hair above 0: ITA tends to +-90 and must not round onto it
    m = colour_measures(np.full((1, 1, 3), 255, np.uint8), np.ones((1, 1)), Light("x", (1.0, 1.0, 0.9995), ""))
    assert m["ita_deg"] is None or abs(m["ita_deg"]) < 90


def test_medians_ignore_glare_and_shadow_and_report_their_spread():
    skin = (120, 150, 200)  # BGR
    pixels = [skin] * 70 + [(255, 255, 255)] * 15 + [(10, 10, 10)] * 15
    m, clean = _measures(pixels), _measures([skin] * 100)
    assert (m["ita_deg"], m["redness_a"], m["lab_l"]) == (clean["ita_deg"], clean["redness_a"], clean["lab_l"])
    assert m["pixels"] == 100 and clean["lab_l_iqr"] == 0 and m["lab_l_iqr"] == 0  # 70% identical pixels
    spread = _measures([skin] * 40 + [(100, 130, 180)] * 30 + [(140, 170, 220)] * 30)
    assert spread["lab_l_iqr"] > 3 and spread["ita_iqr"] > 1


def test_without_correction_the_captured_values_are_the_values():
    m = _measures([(120, 150, 200)] * 5)
    for name in ("ita_deg", "skin_tone", "redness_a", "lab_l", "lab_b"):
        assert m[f"{name}_captured"] == m[name]


def _scene(rng) -> tuple[np.ndarray, np.ndarray]:
    """A face-coloured square on a varied background, and its skin mask."""
    image = rng.integers(30, 220, (120, 160, 3)).astype(np.uint8)
    image = cv2.GaussianBlur(image, (0, 0), 4)
    image[30:90, 50:110] = (125, 155, 205)
    skin = np.zeros(image.shape[:2], np.uint8)
    skin[30:90, 50:110] = 1
    return image, skin


@pytest.mark.parametrize("gains", [(1.25, 1.0, 0.75), (0.8, 1.0, 1.25), (0.85, 1.15, 0.85), (0.5, 0.5, 0.5)])
def test_the_scene_takes_the_light_out(gains):
    image, skin = _scene(np.random.default_rng(1))
    cast = relight(image, gains)
    before = colour_measures(image, skin, estimate(image, "scene", skin))
    after = colour_measures(cast, skin, estimate(cast, "scene", skin))
    # issue 15's targets (medians over real photos): |dITA| <= 3 deg, |da*| <= 1.5
    assert abs(after["ita_deg"] - before["ita_deg"]) <= 3 and abs(after["redness_a"] - before["redness_a"]) <= 1.5
    moved = abs(after["ita_deg_captured"] - before["ita_deg_captured"]) + abs(
        after["redness_a_captured"] - before["redness_a_captured"]
    )
    assert moved > 4  # the camera's values did move


def test_a_photo_that_is_all_skin_is_not_taken_for_the_light():
    image, skin = _scene(np.random.default_rng(2))
    found = estimate(image[30:90, 50:110], "scene", skin[30:90, 50:110])
    assert found.method == "none" and "too little" in found.reference and found.gains_rgb == (1.0, 1.0, 1.0)
    one_colour = np.zeros((50, 50, 3), np.uint8)
    one_colour[:] = (0, 0, 200)  # a red wall: no plausible light
    assert estimate(one_colour, "scene").method == "none"


def test_face_whites_read_the_light_from_sclera_and_teeth_or_fall_back():
    rng = np.random.default_rng(3)
    whites = np.clip(rng.normal((150, 170, 200), 6, (400, 3)), 0, 255).astype(np.uint8)  # warm-lit whites, BGR
    found = estimate(np.zeros((10, 10, 3), np.uint8), "face-whites", None, lambda: whites)
    assert found.method == "face-whites" and found.gains_rgb[2] > found.gains_rgb[0]  # blue raised, red lowered
    image, skin = _scene(rng)
    assert estimate(image, "face-whites", skin, lambda: whites[:20]).method == "none"  # too few
    assert estimate(image, "none", skin, lambda: whites) is light.NO_CORRECTION
    # gray-world on a close-up that is all skin: the face's whites, else nothing
    close_up, all_skin = image[30:90, 50:110], skin[30:90, 50:110]
    assert estimate(close_up, "scene", all_skin, lambda: whites).method == "face-whites"
    assert estimate(close_up, "scene", all_skin, lambda: whites[:20]).method == "none"


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


def test_centre_crop_geometry():
    # timm's eval transform at 224 / 0.875: shorter side to 256, then the central 224x224.
    image = np.zeros((300, 600, 3), np.uint8)
    image[:, 300:] = 255
    out = resize_image(image, InputSpec.timm_eval(224, (0, 0, 0), (1, 1, 1), crop_pct=0.875))
    assert out.shape == (224, 224, 3)
    assert (out[:, :100] == 0).all() and (out[:, 124:] == 255).all()


@pytest.mark.parametrize(
    "field,value",
    [
        ("std", [0.2, 0, 0.2]),
        ("mean", ["0.5", 0.5, 0.5]),
        ("size", [-1, 224]),
        ("size", [100000, 100000]),
        ("size", "224"),
        ("scale", float("nan")),
        ("resize", "pad_and_crop"),
        ("layout", "CHWN"),
    ],
)
def test_input_spec_refuses_what_cannot_run(field, value):
    section = {**InputSpec.timm_eval(224, (0.5,) * 3, (0.5,) * 3).to_manifest(), field: value}
    with pytest.raises(ValueError, match=f"input.{field}"):
        InputSpec.from_manifest(section)
