"""`skin bench`: real measurements on a tiny plan, the report's checks, and a run without torch."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from shared_data import SHARED

from skin_infer.bench import report, suite

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def tiny_rows(tmp_path_factory):
    pytest.importorskip("torch")
    plan = suite.Plan(
        threads=1, rounds=3, warmup=1, classifiers=["test_efficientnet"], batches=[1, 4], parsers=[], int8=True
    )
    images = suite.sample_images(SHARED, 8)
    return suite.classifier_rows(plan, tmp_path_factory.mktemp("bench"), images, log=lambda m: None)


def test_classifier_rows_compare_engines_on_the_same_work(tiny_rows):
    assert [(r["engine"], r["precision"], r["batch"]) for r in tiny_rows] == [
        ("torch", "fp32", 1),
        ("onnxruntime", "fp32", 1),
        ("onnxruntime", "int8", 1),
        ("torch", "fp32", 4),
        ("onnxruntime", "fp32", 4),
        ("onnxruntime", "int8", 4),
    ]
    for row in tiny_rows:
        assert 0 < row["p50_ms"] <= row["p90_ms"] and row["peak_rss_mb"] > 50
        assert row["images_per_s"] == pytest.approx(row["batch"] / row["p50_ms"] * 1e3)
    torch_1, ort_1 = tiny_rows[0], tiny_rows[1]
    assert ort_1["agreement"] == 1.0  # fp32 ONNX Runtime and torch pick the same class
    # measured interleaved: the median of the per-round ratios, each round timing both engines back to back
    ratios = np.array(torch_1["round_ms"]) / np.array(ort_1["round_ms"])
    assert len(ratios) == 3 and ort_1["speedup_vs_torch"] == pytest.approx(float(np.median(ratios)))


def test_report_outputs_and_floor(tiny_rows, tmp_path):
    rows = [{**r, "threads": 1, "system": suite.system_info(1)} for r in tiny_rows]
    report.write_json(rows, tmp_path / "rows.json")
    loaded = json.loads((tmp_path / "rows.json").read_text())
    for key in ("model", "engine", "precision", "batch", "p50_ms", "p90_ms", "speedup_vs_torch"):
        assert all(key in r for r in loaded)
    text = report.markdown(rows, ["a note"])
    assert "| test_efficientnet | onnxruntime | fp32 | 1 |" in text and "46.6 ms" in text and "- a note" in text
    report.write_chart(rows, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes()[:4] == b"\x89PNG"
    speedup = rows[1]["speedup_vs_torch"]
    assert report.check_floor(rows, {"test_efficientnet": speedup / 2}) == []
    [failure] = report.check_floor(rows, {"test_efficientnet": speedup * 2})
    assert "below the floor" in failure
    assert "no measurement" in report.check_floor(rows, {"resnet50": 1.0})[0]
    slower = [{**r, "speedup_vs_torch": (r["speedup_vs_torch"] or 0) / 2 or None} for r in rows]
    assert any("->" in line for line in report.compare_previous(rows, slower))


def test_bench_runs_without_torch(tmp_path):
    from test_torch_free import BLOCKER

    code = BLOCKER + "from skin_infer.cli import app; app()"
    out = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, "-c", code, "bench", "--quick", "--json", str(out), "--shared", str(SHARED), "--threads", "1"],
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": str(BIN)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "torch rows skipped: torch is not installed" in proc.stderr
    rows = json.loads(out.read_text())
    assert {r["engine"] for r in rows} <= {"onnxruntime", "opencv", "process"}
    assert any(r["model"] == "skin-infer cold start" for r in rows)


def test_detector_rows_time_the_shipped_detector_against_torch(tmp_path):
    pytest.importorskip("torch")
    from skin_infer.runtime.defaults import default_models

    plan = suite.Plan(threads=1, rounds=3, warmup=1, int8=True)
    rows = suite.detector_rows(plan, tmp_path, default_models(), suite.sample_images(SHARED, 8), log=lambda m: None)
    assert [(r["engine"], r["precision"]) for r in rows][:3] == [
        ("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")
    ]  # fmt: skip
    assert rows[-1]["precision"].endswith("(shipped)") and all(r["task"] == "detector" for r in rows)
    assert rows[1]["max_abs_score_diff"] < 1e-3  # the same graph in both engines
    assert all(r["p50_ms"] > 0 and r["speedup_vs_torch"] > 0 for r in rows)
