"""The runtime and `skin-infer` run where torch and the other heavy packages cannot be imported.

CI also proves it in a separate clean environment (`pip install .`, no extras); this test blocks the
imports inside the development environment, so it fails the moment a runtime module reaches for one.
"""

import json
import subprocess
import sys

from shared_data import PHOTOS, YUNET

HEAVY = ["torch", "torchvision", "timm", "transformers", "onnx", "onnxslim", "safetensors", "skimage"]
BLOCKER = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {HEAVY!r}:
            raise ImportError('blocked heavy import: ' + name)
sys.meta_path.insert(0, Block())
"""


def test_runtime_imports_without_heavy_packages():
    code = (
        BLOCKER
        + "import skin_infer.runtime, skin_infer.cli; print(sorted(m for m in sys.modules if m.split('.')[0] in "
    )
    code += f"{HEAVY!r}))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_skin_infer_runs_without_heavy_packages(classifier_bundle):
    code = BLOCKER + "from skin_infer.cli import infer_main; infer_main()"
    args = [
        str(PHOTOS[0]),
        "--json",
        "--parser-model",
        str(YUNET / "yunet_s_640_640.onnx"),
        "--model",
        str(classifier_bundle),
    ]
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["face_found"] and result["regions"][0]["predictions"]["dx"]["label"]


def test_commands_that_need_an_extra_name_it(tmp_path):
    code = BLOCKER + "from skin_infer.cli import app; app()"
    for args, extra in (
        (["export", "classifier", str(tmp_path), "--out", str(tmp_path / "b")], "export"),
        (["train", "--data", str(tmp_path), "--out", str(tmp_path / "r")], "train"),
        (["train-parser", "--data", str(tmp_path), "--out", str(tmp_path / "r")], "train"),
    ):
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
        assert proc.returncode == 2, proc.stderr
        assert f"pip install 'skin-infer[{extra}]'" in proc.stderr and "Traceback" not in proc.stderr
