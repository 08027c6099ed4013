import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the tests' ONNX builders and shared-data paths


@pytest.fixture(scope="session")
def efficientnet_b0_bundles(tmp_path_factory):
    """A random-weight efficientnet_b0 (torch) exported by the project's own exporter, as two bundles that differ
    only in how crops are resized: ``bilinear`` (what `skin train` writes by default, and every shipped model) and
    ``bicubic`` (timm's own eval transform for efficientnet_b0)."""
    import shutil

    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")
    from skin_infer.export.classifier import ClassifierGraph
    from skin_infer.export.torch_onnx import graph_to_onnx
    from skin_infer.runtime.bundle import write_manifest
    from skin_infer.runtime.preprocess import IMAGENET_MEAN, IMAGENET_STD, InputSpec

    root = tmp_path_factory.mktemp("effnet")
    torch.manual_seed(0)
    model = timm.create_model("efficientnet_b0", num_classes=7).eval()
    fp32, _, _ = graph_to_onnx(ClassifierGraph(model, False), 224, root, ["logits"])
    bundles = {}
    for interpolation in ("bilinear", "bicubic"):
        folder = bundles[interpolation] = root / interpolation
        folder.mkdir()
        shutil.copy(fp32, folder / "model.onnx")
        write_manifest(
            folder,
            {
                "kind": "classifier",
                "name": f"efficientnet_b0-random-{interpolation}",
                "model": "model.onnx",
                "input": InputSpec.timm_eval(
                    224, IMAGENET_MEAN, IMAGENET_STD, interpolation=interpolation
                ).to_manifest(),
                "outputs": {"logits": "logits"},
                "heads": [{"name": "dx", "labels": ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]}],
            },
            ["model.onnx"],
        )
    return bundles
