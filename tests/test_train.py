"""`skin train` on small real subsets of HAM10000: splits, sampling, runs, resume, heads, bad data."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from shared_data import HAM, NO_FACE, SHARED  # noqa: E402

from skin_infer.runtime import read_image  # noqa: E402
from skin_infer.runtime.preprocess import preprocess  # noqa: E402
from skin_infer.train.config import TrainConfig  # noqa: E402
from skin_infer.train.data import ImageDataset, assign_splits, input_spec, read_records  # noqa: E402
from skin_infer.train.engine import Trainer  # noqa: E402

BIN = Path(sys.executable).parent
LABELS = list(csv.DictReader((HAM / "labels.csv").open()))


def subset_csv(path: Path, per_class: dict[str, int], extra=None, splits=("train", "val", "test")) -> Path:
    """A CSV of the first images of each class and split (paths relative to the HAM folder)."""
    rows, taken = [], Counter()
    for row in LABELS:
        key = (row["split"], row["dx"])
        if row["split"] in splits and taken[key] < per_class.get(row["dx"], 0) * (
            1 if row["split"] == "train" else 0.5
        ):
            taken[key] += 1
            rows.append({**row, **(extra(row) if extra else {})})
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def train_cmd(csv_path, out, *args):
    return [
        str(BIN / "skin"),
        "train",
        "--data",
        str(HAM),
        "--csv",
        str(csv_path),
        "--label",
        "dx",
        "--model",
        "test_efficientnet",
        "--img-size",
        "48",
        "--batch-size",
        "16",
        "--threads",
        "2",
        "--out",
        str(out),
        *map(str, args),
    ]


SMALL = {"nv": 24, "mel": 12, "bkl": 12, "bcc": 8, "akiec": 8, "vasc": 6, "df": 6}


def test_grouped_stratified_split_is_seeded_and_keeps_groups_apart():
    cfg = TrainConfig(
        data=str(HAM), csv="labels.csv", labels=["dx"], group_column="lesion_id", split_column="none", seed=3
    )
    records, heads = read_records(cfg)
    assert len(records) == 5984 and heads[0]["labels"] == ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
    assign_splits(records, cfg)
    groups = {}
    for r in records:
        groups.setdefault(r.group, set()).add(r.split)
    assert all(len(s) == 1 for s in groups.values())
    counts = Counter(r.split for r in records)
    assert 0.12 < counts["test"] / len(records) < 0.18 and 0.12 < counts["val"] / len(records) < 0.18
    for c in range(7):  # every class is on every side, close to its overall share
        share = np.mean([r.targets[0] == c for r in records])
        test_share = np.mean([r.targets[0] == c for r in records if r.split == "test"])
        assert abs(test_share - share) < 0.02
    again, _ = read_records(cfg)
    assign_splits(again, cfg)
    assert [r.split for r in again] == [r.split for r in records]


def test_eval_transform_is_the_runtime_preprocessing(tmp_path):
    cfg = TrainConfig(
        data=str(HAM),
        csv=str(subset_csv(tmp_path / "s.csv", {"mel": 2, "nv": 2})),  # two classes: one is refused
        labels=["dx"],
        img_size=160,
        crop_pct=0.875,
        interpolation="bicubic",
    )
    records, _ = read_records(cfg)
    spec = input_spec(cfg, [0.5, 0.4, 0.3], [0.2, 0.25, 0.3])
    # a non-square, larger image too: the dataset's cached square must not change what eval sees
    records[0].path = NO_FACE[0]
    dataset = ImageDataset(records, spec)
    for i, record in enumerate(records):
        x, _ = dataset[i]
        expected = preprocess([read_image(record.path)], spec)[0]
        np.testing.assert_allclose(x.numpy(), expected, atol=1e-6)


def test_balanced_sampler_balances_classes(tmp_path):
    csv_path = subset_csv(tmp_path / "s.csv", {"nv": 60, "mel": 12, "df": 6}, splits=("train", "val"))
    cfg = TrainConfig(
        data=str(HAM),
        csv=str(csv_path),
        labels=["dx"],
        model="test_efficientnet",
        img_size=32,
        sampler="balanced",
        augment="none",
        epochs=1,
    )
    trainer = Trainer(cfg, tmp_path / "run")
    seen = Counter()
    for epoch in range(3):
        for _, y in trainer._loader(epoch):
            seen.update(y[:, 0].tolist())
    shares = np.array([seen[c] for c in range(3)]) / sum(seen.values())
    assert np.all(np.abs(shares - 1 / 3) < 0.08), shares  # from 77% / 15% / 8% in the data
    assert list(trainer.losses[0].cb_weight.shape) == [3]
    assert trainer.cfg.heads[0]["labels"] == ["df", "mel", "nv"]
    weight = trainer.losses[0].cb_weight
    assert weight[0] > weight[1] > weight[2]  # the loss keeps the original counts: rare df weighs most


def test_train_run_writes_an_exportable_run_directory(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        train_cmd(
            subset_csv(tmp_path / "s.csv", SMALL),
            out,
            "--epochs",
            "2",
            "--loss",
            "cb_focal:0.8+soft_f1:0.2",
            "--sampler",
            "balanced",
        ),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    for name in (
        "config.json",
        "log.csv",
        "metrics.json",
        "best.safetensors",
        "last.safetensors",
        "state.pt",
        "confusion_val_dx.csv",
        "confusion_val_dx.png",
        "confusion_test_dx.png",
        "curves.png",
    ):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["balanced_accuracy"] <= 1 and 0 <= metrics["macro_f1"] <= 1
    assert set(metrics["val"]["heads"]["dx"]["recall"]) == set(SMALL)
    config = json.loads((out / "config.json").read_text())
    assert config["heads"] == [{"name": "dx", "labels": sorted(SMALL), "ordinal": False}]
    assert len(list(csv.DictReader((out / "log.csv").open()))) == 2
    # the saved config re-runs the same run
    rerun = subprocess.run(
        [str(BIN / "skin"), "train", "--config", str(out / "config.json"), "--out", str(tmp_path / "rerun")],
        capture_output=True,
        text=True,
    )
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads((tmp_path / "rerun" / "metrics.json").read_text())["val"] == metrics["val"]


def test_tie_keeps_the_later_epoch(tmp_path):
    # lr 0 and a network without batch-norm statistics: every epoch scores exactly the same
    out = tmp_path / "run"
    proc = subprocess.run(
        train_cmd(
            subset_csv(tmp_path / "s.csv", SMALL), out, "--epochs", "3", "--lr", "0", "--model", "test_efficientnet_ln"
        ),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    scores = {row["val_score"] for row in csv.DictReader((out / "log.csv").open())}
    assert len(scores) == 1
    assert json.loads((out / "metrics.json").read_text())["best_epoch"] == 3


def test_killed_run_resumes_to_the_same_result(tmp_path):
    csv_path = subset_csv(tmp_path / "s.csv", SMALL)
    args = ("--epochs", "3", "--sampler", "balanced", "--augment", "strong", "--seed", "7")
    whole = subprocess.run(train_cmd(csv_path, tmp_path / "whole", *args), capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    killed = tmp_path / "killed"
    proc = subprocess.Popen(train_cmd(csv_path, killed, *args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (killed / "log.csv").is_file():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "metrics.json").exists()
    resumed = subprocess.run([str(BIN / "skin"), "train", "--resume", str(killed)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    b = json.loads((killed / "metrics.json").read_text())
    assert a["val"] == b["val"] and a["test"] == b["test"] and a["best_epoch"] == b["best_epoch"]
    log_a = [
        {k: v for k, v in r.items() if k not in ("seconds", "images_per_s")}
        for r in csv.DictReader((tmp_path / "whole" / "log.csv").open())
    ]
    log_b = [
        {k: v for k, v in r.items() if k not in ("seconds", "images_per_s")}
        for r in csv.DictReader((killed / "log.csv").open())
    ]
    assert log_a == log_b


def test_multi_head_with_an_ordinal_head(tmp_path):
    def age_grade(row):
        age = float(row["age"] or 50)
        return {"age_grade": "0" if age < 40 else "1" if age < 60 else "2"}

    csv_path = subset_csv(tmp_path / "s.csv", SMALL, extra=age_grade)
    out = tmp_path / "run"
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"head_losses": {"age_grade": "masked_ls"}, "loss": "cb_focal"}))
    cmd = train_cmd(csv_path, out, "--epochs", "1", "--config", config)
    cmd[cmd.index("dx")] = "dx,age_grade"
    proc = subprocess.run(cmd + ["--ordinal", "age_grade"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["heads"][1] == {"name": "age_grade", "labels": ["0", "1", "2"], "ordinal": True}
    heads = json.loads((out / "metrics.json").read_text())["val"]["heads"]
    assert set(heads) == {"dx", "age_grade"}
    assert "mae" in heads["age_grade"] and 0 <= heads["age_grade"]["adjacent_recall"] <= 1
    assert "mae" not in heads["dx"]
    assert (out / "confusion_val_age_grade.png").is_file()


def test_corrupt_image_is_skipped_with_a_warning(tmp_path):
    root = tmp_path / "folder"
    taken = Counter()
    for row in (r for r in LABELS if r["dx"] in ("mel", "nv") and r["split"] != "test"):
        if taken[row["dx"]] >= 20:  # two classes (one alone is refused), 40 images
            continue
        taken[row["dx"]] += 1
        target = root / row["split"] / row["dx"] / Path(row["path"]).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((HAM / row["path"]).read_bytes())
    victim = next((root / "train" / "mel").iterdir())
    victim.write_bytes(victim.read_bytes()[:2000])
    out = tmp_path / "run"
    cmd = [
        str(BIN / "skin"),
        "train",
        "--data",
        str(root),
        "--model",
        "test_efficientnet",
        "--img-size",
        "32",
        "--epochs",
        "1",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "1 unreadable image(s) skipped" in proc.stderr and victim.name in proc.stderr
    assert json.loads((out / "metrics.json").read_text())["skipped_images"] == 1


def test_pretrained_without_the_hub_fails_fast(tmp_path):
    """The hub is asked once, with a short connect timeout, before any download (no retries for minutes)."""
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
    proc = subprocess.run(
        train_cmd(subset_csv(tmp_path / "s.csv", SMALL), tmp_path / "run", "--pretrained", "--model", "resnet18"),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,  # a hang guard, not a speed target
    )
    assert proc.returncode == 1 and "--init-weights" in proc.stderr and "cannot be reached" in proc.stderr
    assert not any((tmp_path / "hf").rglob("*.*")), "a download was attempted"


def test_bad_options_are_clear(tmp_path):
    csv_path = subset_csv(tmp_path / "s.csv", SMALL)
    wrong = tmp_path / "wrong.safetensors"
    from safetensors.torch import save_file

    save_file({"fc.weight": torch.zeros(3, 3)}, str(wrong))
    proc = subprocess.run(train_cmd(csv_path, tmp_path / "a", "--init-weights", wrong), capture_output=True, text=True)
    assert proc.returncode == 1 and "another architecture" in proc.stderr
    proc = subprocess.run(train_cmd(csv_path, tmp_path / "b", "--model", "no_such_net"), capture_output=True, text=True)
    assert proc.returncode == 1 and "unknown timm model" in proc.stderr
    proc = subprocess.run(train_cmd(csv_path, tmp_path / "c", "--sampler", "magic"), capture_output=True, text=True)
    assert proc.returncode == 1 and "sampler 'magic'" in proc.stderr


@pytest.mark.skipif(not (SHARED / "weights" / "imagenet_mobilenet_v2").is_dir(), reason="no ImageNet weights")
def test_imported_imagenet_weights_match_the_tflite_model():
    import cv2
    import onnxruntime as ort
    import timm

    from skin_infer.train.import_weights import calibrate_norms, convert

    source = SHARED / "weights" / "imagenet_mobilenet_v2" / "mobilenet_v2_1.0_224_quant.onnx"
    model = timm.create_model("mobilenetv2_100", num_classes=1001, pad_type="same").eval()
    state = convert(source, pad_type="same")
    # measured BatchNorm statistics keep the inference function (and make training start from it)
    calibrate_norms(state, sorted((HAM / "mel").iterdir())[:16], pad_type="same")
    assert float(state["bn1.running_var"].min()) != pytest.approx(1.0, abs=1e-3)
    model.load_state_dict(state)
    session = ort.InferenceSession(str(source))
    for path in NO_FACE:
        image = cv2.cvtColor(cv2.resize(cv2.imread(str(path)), (224, 224)), cv2.COLOR_BGR2RGB)
        x = (image.astype(np.float32) / 127.5 - 1).transpose(2, 0, 1)[None]
        reference = session.run(None, {"input": x})[0][0]
        with torch.no_grad():
            ours = torch.softmax(model(torch.from_numpy(x)), 1)[0].numpy()
        assert ours.argmax() == reference.argmax(), path.name
        assert abs(ours.max() - reference.max()) < 0.05
