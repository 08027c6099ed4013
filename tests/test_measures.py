"""Pure units that need no shared data: region placement, colour measures, preprocessing geometry."""

import numpy as np
import pytest
from skimage.color import rgb2lab

from skin_infer.runtime.preprocess import InputSpec, resize_image
from skin_infer.runtime.regions import REGION_NAMES, place_regions
from skin_infer.runtime.skin import colour_measures, skin_tone


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
        ("resize", "letterbox"),
        ("layout", "CHWN"),
    ],
)
def test_input_spec_refuses_what_cannot_run(field, value):
    section = {**InputSpec.timm_eval(224, (0.5,) * 3, (0.5,) * 3).to_manifest(), field: value}
    with pytest.raises(ValueError, match=f"input.{field}"):
        InputSpec.from_manifest(section)
