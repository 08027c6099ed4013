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
    from skin_infer.export.classifier import ClassifierGraph
    from skin_infer.export.torch_onnx import graph_to_onnx
    from skin_infer.runtime.bundle import write_manifest
    from skin_infer.runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD, InputSpec

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
            "input": InputSpec.timm_eval(224, IMAGENET_MEAN, IMAGENET_STD, interpolation="bicubic").to_manifest(),
            "outputs": {"logits": "logits"},
            "heads": [{"name": "dx", "labels": ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]}],
        },
        ["model.onnx"],
    )
    return model, folder


@pytest.fixture(scope="session")
def efficientnet_b0_bundle(efficientnet_b0):
    return efficientnet_b0[1]
