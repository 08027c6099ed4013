"""`skin export`: real runs and a real SegFormer become bundles the torch-free runtime runs, with checks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from shared_data import FACES, HAM, PHOTOS, YUNET  # noqa: E402

from skin_infer.bench.segformer_shapes import FACE_LABELS, make_segformer  # noqa: E402
from skin_infer.export.bundle_writer import ExportError  # noqa: E402
from skin_infer.export.classifier import export_classifier, load_run  # noqa: E402
from skin_infer.export.parser import export_parser  # noqa: E402
from skin_infer.runtime import Classifier, SegFormerParser, YuNetDetector, load_bundle, read_image  # noqa: E402
from skin_infer.runtime.preprocess import preprocess  # noqa: E402
from skin_infer.train.config import TrainConfig  # noqa: E402
from skin_infer.train.engine import Trainer  # noqa: E402

BIN = Path(sys.executable).parent


def _train(tmp_path_factory, model: str, size: int = 48) -> Path:
    out = tmp_path_factory.mktemp(model) / "run"
    cfg = TrainConfig(
        data=str(HAM),
        csv="labels.csv",
        labels=["dx"],
        model=model,
        img_size=size,
        epochs=1,
        limit=160,
        batch_size=16,
        threads=2,
    )
    Trainer(cfg, out).fit()
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return _train(tmp_path_factory, "test_efficientnet")


@pytest.fixture(scope="module")
def fp32_bundle(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "fp32"
    export_classifier(run_dir, out)
    return out


def test_fp32_bundle_matches_torch_through_the_runtime(run_dir, fp32_bundle):
    manifest = load_bundle(fp32_bundle).manifest
    assert manifest["precision"] == "fp32" and manifest["outputs"] == {"logits": "logits", "cam": "cam"}
    assert manifest["verification"]["fp32"]["top1_agreement"] == 1.0
    assert manifest["optimization"]["after"]["nodes"] < manifest["optimization"]["before"]["nodes"]
    assert manifest["heads"][0]["labels"] == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assert manifest["producer"]["opset"] == 17 and "torch" in manifest["producer"]
    _, model = load_run(run_dir)
    images = [read_image(p) for p in sorted((HAM / "mel").iterdir())[:6]]
    classifier = Classifier(fp32_bundle, "cpu")
    logits, _ = classifier.run(images)
    with torch.no_grad():
        expected = model(torch.from_numpy(preprocess(images, classifier.bundle.input_spec))).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4)


def test_cam_equals_grad_cam(run_dir, fp32_bundle):
    _, model = load_run(run_dir)
    classifier = Classifier(fp32_bundle, "cpu")
    image = read_image(sorted((HAM / "bcc").iterdir())[0])
    logits, cams = classifier.run([image], with_cam=True)
    [pred] = classifier.predictions(logits)
    ours = classifier.cam_for(cams, 0, pred)
    # Grad-CAM in torch: gradient of the predicted logit w.r.t. the last feature map, averaged over space
    x = torch.from_numpy(preprocess([image], classifier.bundle.input_spec))
    features = model.forward_features(x).detach().requires_grad_(True)
    score = model.forward_head(features)[0, int(logits[0].argmax())]
    (grad,) = torch.autograd.grad(score, features)
    grad_cam = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * features).sum(1))[0].detach().numpy()
    grad_cam = grad_cam / grad_cam.max()
    np.testing.assert_allclose(ours, grad_cam, atol=1e-4)


def test_head_without_cam(tmp_path_factory, tmp_path):
    run = _train(tmp_path_factory, "mobilenetv3_small_050")
    with pytest.raises(ExportError, match="no exact class-activation map"):
        export_classifier(run, tmp_path / "cam", cam=True)
    manifest = export_classifier(run, tmp_path / "plain")
    assert "cam" not in manifest["outputs"]
    proc = subprocess.run(
        [str(BIN / "skin-infer"), str(PHOTOS[0]), "--model", str(tmp_path / "plain"), "--explain"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "no CAM output" in proc.stderr


def test_int8_gate_keeps_or_refuses_with_numbers(run_dir, tmp_path):
    manifest = export_classifier(run_dir, tmp_path / "int8", precision="int8", max_drop=1.0)
    assert manifest["precision"] == "int8"
    report = manifest["quantization"]
    assert len(report["candidates"]) >= 3 and all(c["passed"] for c in report["candidates"])
    assert report["eval_images"] == 897 and report["calibration_images"] == 256
    assert Classifier(tmp_path / "int8", "cpu").run([read_image(PHOTOS[0])])[0].shape == (1, 7)
    with pytest.raises(ExportError, match=r"int8 refused: fp32 balanced accuracy 0\.\d+ on 897 images"):
        export_classifier(run_dir, tmp_path / "never", precision="int8", max_drop=-1.0)
    assert not (tmp_path / "never").exists()  # nothing half-written


def test_auto_is_never_slower_than_fp32(run_dir, tmp_path):
    manifest = export_classifier(run_dir, tmp_path / "auto", precision="auto", max_drop=1.0)
    latency = manifest["quantization"]["latency_ms"]
    if manifest["precision"] == "int8":
        assert latency["int8"] < latency["fp32"]
    else:
        assert manifest["precision"] == "fp32" and "not faster" in manifest["quantization"]["decision"]


def test_export_says_where_the_model_applies(run_dir, tmp_path):
    manifest = export_classifier(run_dir, tmp_path / "face", domain="face", applies_to="face")
    assert manifest["domain"] == "face" and manifest["applies_to"] == "face"
    classifier = Classifier(tmp_path / "face", "cpu")
    assert classifier.domain == "face" and classifier.applies_to == "face"
    with pytest.raises(ExportError, match="--domain"):
        export_classifier(run_dir, tmp_path / "bad", domain="feet")
    with pytest.warns(UserWarning, match="no --domain"):
        assert "domain" not in export_classifier(run_dir, tmp_path / "legacy")


def test_fp16_for_gpu_only(run_dir, tmp_path):
    with pytest.raises(ExportError, match="fp16 is for GPU execution"):
        export_classifier(run_dir, tmp_path / "fp16cpu", precision="fp16")
    manifest = export_classifier(run_dir, tmp_path / "fp16", precision="fp16", target="gpu")
    import onnx

    graph = onnx.load(str(tmp_path / "fp16" / "model.onnx")).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # IO stays fp32
    assert {i.data_type for i in graph.initializer} == {onnx.TensorProto.FLOAT16}
    assert manifest["verification"]["fp16"]["top1_agreement"] >= 0.98


def test_broken_checkpoint_and_unknown_architecture(run_dir, tmp_path):
    import shutil

    broken = shutil.copytree(run_dir, tmp_path / "broken")
    data = (broken / "best.safetensors").read_bytes()
    (broken / "best.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ExportError, match="broken or mismatched checkpoint"):
        export_classifier(broken, tmp_path / "b1")
    odd = shutil.copytree(run_dir, tmp_path / "odd")
    config = json.loads((odd / "config.json").read_text())
    (odd / "config.json").write_text(json.dumps({**config, "model": "not_a_timm_model"}))
    with pytest.raises(ExportError, match="cannot rebuild architecture 'not_a_timm_model'"):
        export_classifier(odd, tmp_path / "b2")
    with pytest.raises(ExportError, match="not a run directory"):
        export_classifier(tmp_path, tmp_path / "b3")


def test_parity_failure_is_loud(run_dir, tmp_path):
    with pytest.raises(ExportError, match="ONNX Runtime disagrees with torch"):
        export_classifier(run_dir, tmp_path / "strict", logit_tolerance=0.0)
    assert not (tmp_path / "strict").exists()


def test_cli_export_and_verify(run_dir, tmp_path):
    out = tmp_path / "bundle"
    proc = subprocess.run(
        [str(BIN / "skin"), "export", "classifier", str(run_dir), "--out", str(out)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert "parity on 64 images: top-1 1.0000" in proc.stderr
    verified = subprocess.run([str(BIN / "skin"), "export", "verify", str(out)], capture_output=True, text=True)
    assert verified.returncode == 0 and json.loads(verified.stdout)["parity"]["top1_agreement"] == 1.0
    (out / "model.onnx").write_bytes((out / "model.onnx").read_bytes() + b"\x00")
    tampered = subprocess.run([str(BIN / "skin"), "export", "verify", str(out)], capture_output=True, text=True)
    assert tampered.returncode == 1 and "checksum mismatch" in tampered.stderr


# -- face parser ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def segformer_dir(tmp_path_factory) -> Path:
    tiny = {
        "depths": [1] * 4,
        "hidden_sizes": [8, 16, 32, 64],
        "decoder_hidden_size": 32,
        "num_attention_heads": [1, 1, 2, 2],
    }
    return make_segformer(tmp_path_factory.mktemp("segformer") / "tiny", tiny)


def test_parser_bundle_runs_in_the_runtime(segformer_dir, tmp_path):
    out = tmp_path / "parser"
    manifest = export_parser(out, local=segformer_dir, size=128, images=FACES / "photos")
    assert manifest["id2label"]["10"] == "nose" and manifest["skin_labels"] == ["skin", "nose"]
    assert manifest["parts"]["eye"] == ["l_eye", "r_eye"] and manifest["parts"]["mouth"] == ["mouth", "u_lip", "l_lip"]
    assert manifest["verification"]["fp32"]["pixel_agreement"] >= 0.99
    # random weights parse no real face, so the parse's confirmation of the detection is switched off here
    parser = SegFormerParser(out, YuNetDetector(YUNET / "yunet_s_640_640.onnx", "cpu"), "cpu", confirm=False)
    image = read_image(FACES / "photos" / "fairface_Asian_aligned.jpg")
    faces, skin = parser.detect(image)
    assert len(faces) == 1 and skin.shape == image.shape[:2]
    # label maps come back at the crop's size, with the model's label ids
    crop_maps = parser._label_maps([image])
    assert crop_maps[0].shape == image.shape[:2] and crop_maps[0].max() < len(FACE_LABELS)
    proc = subprocess.run(
        [str(BIN / "skin-infer"), str(PHOTOS[0]), "--parser", "segformer", "--parser-model", str(out), "--json"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "faces: segformer" in proc.stderr and "face_found" in json.loads(proc.stdout)


def test_parser_int8_and_label_output(segformer_dir, tmp_path):
    fp32 = tmp_path / "fp32"  # label output too: both label maps are then resized the same way
    export_parser(fp32, local=segformer_dir, size=128, images=FACES / "photos", labels_output=True)
    int8 = tmp_path / "int8"
    manifest = export_parser(
        int8, local=segformer_dir, size=128, images=FACES / "photos", precision="int8", labels_output=True
    )
    assert manifest["outputs"] == {"labels": "labels"} and manifest["verification"]["int8"]["pixel_agreement"] >= 0.95
    detector = YuNetDetector(YUNET / "yunet_s_640_640.onnx", "cpu")
    images = [read_image(p) for p in PHOTOS[:4]]
    a = SegFormerParser(fp32, detector, "cpu")._label_maps(images)
    b = SegFormerParser(int8, detector, "cpu")._label_maps(images)
    assert np.mean([np.mean(x == y) for x, y in zip(a, b, strict=True)]) >= 0.95
    assert (int8 / "model.onnx").stat().st_size < (fp32 / "model.onnx").stat().st_size


def test_parser_labels_come_from_the_model(tmp_path, segformer_dir):
    with pytest.raises(ExportError, match="--skin-labels"):
        export_parser(tmp_path / "p", local=segformer_dir, size=64, images=FACES / "photos", skin_labels=["face"])


def test_parser_from_an_unreachable_hub_fails_fast(tmp_path):
    """The hub is asked once, with a short connect timeout, before any download (no retries for minutes)."""
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run(
        [str(BIN / "skin"), "export", "parser", "--hf", "jonathandinu/face-parsing", "--out", str(tmp_path / "p")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,  # a hang guard, not a speed target
    )
    assert proc.returncode == 1 and "--local" in proc.stderr
    assert not any((tmp_path / "hf").rglob("*.*")) and not (tmp_path / "p").exists()


def test_parser_export_verifies_on_sample_photos_when_none_are_given(segformer_dir, tmp_path):
    """The documented two-argument form: `skin export parser --local DIR --out B`."""
    out = tmp_path / "parser"
    proc = subprocess.run(
        [str(BIN / "skin"), "export", "parser", "--local", str(segformer_dir), "--out", str(out), "--size", "64"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["verification"]["photos"].startswith("scikit-image sample photos (astronaut")
    assert manifest["verification"]["fp32"]["images"] == 4 and "scikit-image sample photos" in proc.stderr
