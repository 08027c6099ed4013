"""The lesion classifier shipped in models/: used by default on dermoscopy close-ups, never on face photos."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from shared_data import HAM, PHOTOS

from skin_infer.runtime import Classifier, load_bundle, read_image
from skin_infer.runtime.defaults import default_models

BIN = Path(sys.executable).parent
LABELS = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]


@pytest.fixture(scope="module")
def bundle():
    found = [b for b in default_models() if b.name == "ham10000-mobilenetv2"]
    assert found, "models/ must ship the lesion classifier bundle"
    return found[0]


def test_shipped_bundle_is_complete_and_small(bundle):
    manifest = load_bundle(bundle).manifest  # checksums verified
    assert manifest["heads"] == [{"name": "dx", "labels": LABELS, "ordinal": False}]
    assert manifest["outputs"].get("cam") == "cam"  # --explain works
    assert sum(f["size"] for f in manifest["files"].values()) <= 20e6
    assert manifest["metrics"]["test"]["balanced_accuracy"] >= 0.55
    assert (bundle.parent / f"{bundle.name}.md").is_file()  # the model card


def test_recognises_lesions_it_never_trained_on(bundle):
    """Test-split images, a few per class: better than chance by a wide margin, in one batched call each."""
    classifier = Classifier(bundle, "cpu", threads=2)
    rows = list(csv.DictReader((HAM / "labels.csv").open()))
    correct = total = 0
    for label in LABELS:
        paths = [HAM / r["path"] for r in rows if r["dx"] == label and r["split"] == "test"][:8]
        logits, _ = classifier.run([read_image(p) for p in paths])
        correct += sum(p["dx"].label == label for p in classifier.predictions(logits))
        total += len(paths)
    assert correct / total > 0.4  # chance is 1/7


def test_skin_infer_uses_it_by_default(tmp_path):
    lesion = sorted((HAM / "bcc").iterdir())[0]
    proc = subprocess.run(
        [str(BIN / "skin-infer"), str(lesion), "--json", "--parser", "none"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    [region] = json.loads(proc.stdout)["regions"]
    assert region["name"] == "whole_image" and set(region["predictions"]["dx"]["probs"]) == set(LABELS)
    face = subprocess.run(
        [str(BIN / "skin-infer"), str(PHOTOS[0]), "--save-overlays", str(tmp_path), "--explain"],
        capture_output=True,
        text=True,
    )
    assert face.returncode == 0, face.stderr
    # on a face photo the lesion model never answers: no lesion class in the table, whatever the face
    assert "ham10000-mobilenetv2 (dermoscopy" in face.stderr and "dx" not in face.stdout and "acne" in face.stdout
    off = subprocess.run(
        [str(BIN / "skin-infer"), str(lesion), "--model", "none", "--json"], capture_output=True, text=True
    )
    assert json.loads(off.stdout)["regions"][0]["predictions"] == {} and "no model" in off.stderr
