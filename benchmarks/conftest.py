import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the tests' ONNX builders and shared-data paths


@pytest.fixture(scope="session")
def efficientnet_b0(tmp_path_factory):
    """A random-weight efficientnet_b0 (torch) and its bundle, exported by the project's own exporter."""
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    from builders import IMAGENET

    from skin_infer.export.classifier import ClassifierGraph, graph_to_onnx
    from skin_infer.runtime.bundle import write_manifest

    folder = tmp_path_factory.mktemp("effnet")
    torch.manual_seed(0)
    model = timm.create_model("efficientnet_b0", num_classes=7).eval()
    fp32, _, _ = graph_to_onnx(ClassifierGraph(model, False), 224, folder, ["logits"])
    fp32.rename(folder / "model.onnx")
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
    return model, folder


@pytest.fixture(scope="session")
def efficientnet_b0_bundle(efficientnet_b0):
    return efficientnet_b0[1]
