import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the tests' ONNX builders


@pytest.fixture(scope="session")
def efficientnet_b0_bundle(tmp_path_factory) -> Path:
    """An efficientnet_b0-sized classifier bundle (random weights): the size the runtime targets are set for."""
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    from builders import IMAGENET

    from skin_infer.runtime.bundle import write_manifest

    folder = tmp_path_factory.mktemp("effnet")
    model = timm.create_model("efficientnet_b0", num_classes=7).eval()
    torch.onnx.export(
        model,
        torch.zeros(1, 3, 224, 224),
        str(folder / "model.onnx"),
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    write_manifest(
        folder,
        {
            "kind": "classifier",
            "name": "efficientnet_b0-random",
            "model": "model.onnx",
            "input": {
                "name": "input",
                "layout": "NCHW",
                "size": [224, 224],
                "color": "RGB",
                "scale": 1 / 255,
                **IMAGENET,
                "resize": "shorter_side_center_crop",
                "crop_pct": 0.875,
                "interpolation": "bicubic",
            },
            "outputs": {"logits": "logits"},
            "heads": [{"name": "dx", "labels": ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]}],
        },
        ["model.onnx"],
    )
    return folder
