"""A ``skin train-detector`` run to a detector bundle the runtime's ``Detector`` runs.

The graph is :class:`~skin_infer.train.detection.DetectorGraph` (peak scores and boxes, dynamic batch); decoding
is the runtime's. Everything the manifest states is measured here on the run's val split, through the same
decoding: parity torch vs ONNX Runtime (max score difference and val mAP of both), the int8 gate (kept only within
``INT8_MAX_MAP_DROP`` of fp32's val mAP), the score threshold (the one at which the counted boxes follow the human
counts best: Spearman's rho per photo; box F1 at IoU 0.5 beside it), the
face margin of the crop (the val photos' own framing around the face the runtime's YuNet finds), the smallest
face, and the reference count behind ``wrinkle_score``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from ..runtime.bundle import write_manifest
from ..runtime.detections import Boxes, box_report, decode, iou_matrix, letterbox
from ..runtime.preprocess import InputSpec, preprocess
from .bundle_writer import ExportError, producer, staged_bundle
from .optimize import latency_ms, session
from .torch_onnx import graph_to_onnx

OUTPUTS = ["scores", "boxes"]
# boxes from this score up are reported (below the score threshold, as uncertain): what mAP is measured on
REPORT_THRESHOLD = 0.1
THRESHOLDS = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
FP32_MAX_SCORE_DIFF = 1e-3
INT8_MAX_MAP_DROP = 0.01
NMS_IOU = 0.5


def load_run_detector(run: Path):
    """A ``skin train-detector`` run: (model with its selected weights, config, class names)."""
    from safetensors.torch import load_file

    from ..train.detection import DetectConfig, build_model, read_classes

    run = Path(run)
    if not (run / "config.json").is_file() or not (run / "best.safetensors").is_file():
        raise ExportError(f"{run}: not a finished `skin train-detector` run (config.json and best.safetensors).")
    cfg = DetectConfig.load(run / "config.json")
    classes = read_classes(Path(cfg.data))
    model = build_model(DetectConfig.from_dict({**cfg.__dict__, "init_weights": None}), len(classes))
    model.load_state_dict(load_file(str(run / "best.safetensors")))
    return model.eval(), cfg, classes


def _outputs(run_batch, images: list[np.ndarray], spec: InputSpec) -> list[tuple[np.ndarray, np.ndarray]]:
    """(scores, boxes) per image (RGB) from ``run_batch`` (a torch or ONNX Runtime call on a float batch)."""
    out = []
    for k in range(0, len(images), 16):
        canvases = [letterbox(im[:, :, ::-1], spec.size[0])[0] for im in images[k : k + 16]]
        scores, boxes = run_batch(preprocess(canvases, spec))
        out += list(zip(scores, boxes, strict=True))
    return out


def _detections(outputs, images: list[np.ndarray], size: int, threshold: float) -> list[Boxes]:
    found = []
    for (scores, boxes), image in zip(outputs, images, strict=True):
        d = decode(scores, boxes, threshold, NMS_IOU)
        found.append(Boxes(d.classes, d.scores, letterbox(image, size)[1].to_source(d.xyxy)))
    return found


def box_f1(detections: list[Boxes], truths: list[Boxes], iou: float = 0.5) -> float:
    """F1 of same-type matches at ``iou`` (greedy by score), pooled over all types and images."""
    tp = n_det = n_true = 0
    for det, truth in zip(detections, truths, strict=True):
        n_det, n_true = n_det + len(det), n_true + len(truth)
        if not len(det) or not len(truth):
            continue
        overlaps = iou_matrix(det.xyxy, truth.xyxy) * (det.classes[:, None] == truth.classes[None, :])
        taken = np.zeros(len(truth), bool)
        for i in np.argsort(-det.scores):
            free = np.where(taken, 0, overlaps[i])
            j = int(np.argmax(free))
            if free[j] >= iou:
                taken[j], tp = True, tp + 1
    return 2 * tp / max(n_det + n_true, 1)


def _framing(images_rgb: list[np.ndarray]) -> tuple[float, int]:
    """(face margin, smallest face): the val photos' framing around the largest face the runtime's YuNet finds
    (median ``(long side / face side - 1) / 2``), and two thirds of the smallest of those faces' sides (the acne
    grader's rule: below it, no face of that scale was ever seen)."""
    from ..runtime.finders import make_finder

    finder = make_finder("yunet", None, "cpu", 2, None)
    ratios, sides = [], []
    for image in images_rgb:
        faces, _ = finder.detect(np.ascontiguousarray(image[:, :, ::-1]))
        if faces:
            box = max(faces, key=lambda f: f.box[2] * f.box[3]).box
            ratios.append(max(image.shape[:2]) / max(box[2:]))
            sides.append(min(box[2:]))
    if len(ratios) < 10:
        raise ExportError(f"faces were found in only {len(ratios)} val photos; the crop's framing cannot be measured")
    return round(float(np.median(ratios) - 1) / 2, 2), int(2 * min(sides) / 3)


def detector_parity(bundle, run: Path, limit: int = 32) -> dict:
    """``skin export verify``: the bundle's scores against torch's on the run's first val photos; its classes
    against the run's; an fp32 graph must agree within ``FP32_MAX_SCORE_DIFF``."""
    from ..train.detection import DetectorGraph, read_split

    model, cfg, classes = load_run_detector(run)
    if bundle.manifest["classes"] != classes:
        raise ExportError(
            f"{bundle.path}: the manifest's classes {bundle.manifest['classes']} are not the source run's {classes} "
            f"({run}); the manifest was edited: re-export the bundle."
        )
    images = [s.image for s in read_split(Path(cfg.data), "val", len(classes))[:limit]]
    graph = DetectorGraph(model, cfg.size).eval()
    with torch.inference_mode():
        reference = _outputs(lambda x: [t.numpy() for t in graph(torch.from_numpy(x))], images, bundle.input_spec)
    sess = session(bundle.model_path)
    got = _outputs(lambda x: sess.run(OUTPUTS, {"input": x}), images, bundle.input_spec)
    diff = max(float(np.abs(a[0] - b[0]).max()) for a, b in zip(got, reference, strict=True))
    if bundle.manifest.get("precision") == "fp32" and diff > FP32_MAX_SCORE_DIFF:
        raise ExportError(f"{bundle.path}: scores differ from torch by up to {diff:.2g} (> {FP32_MAX_SCORE_DIFF})")
    return {"val_images": len(images), "max_abs_score_diff": diff, "precision": bundle.manifest.get("precision")}


def export_detector(run: Path, out: Path, precision: str = "auto", opset: int = 17) -> dict:
    """Export and verify a detector run; return the manifest written."""
    from ..train.detection import MEAN_STD, DetectorGraph, read_split

    if precision not in ("fp32", "int8", "auto"):
        raise ExportError(f"--precision {precision!r}: a detector exports as fp32, int8 or auto")
    model, cfg, classes = load_run_detector(run)
    spec = InputSpec((cfg.size, cfg.size), *MEAN_STD, resize="letterbox", name="input")
    val = read_split(Path(cfg.data), "val", len(classes))
    images, truths = [s.image for s in val], [s.truth for s in val]
    graph = DetectorGraph(model, cfg.size).eval()

    def torch_batch(x):
        with torch.inference_mode():
            return [t.numpy() for t in graph(torch.from_numpy(x))]

    reference = _outputs(torch_batch, images, spec)
    torch_map = box_report(_detections(reference, images, cfg.size, REPORT_THRESHOLD), truths, classes)["map50"]
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        fp32, slim, stats = graph_to_onnx(graph, cfg.size, tmp, OUTPUTS, opset, "detector", "input")

        def measured(path: Path) -> dict:
            sess = session(path)
            outputs = _outputs(lambda x: sess.run(OUTPUTS, {"input": x}), images, spec)
            diff = max(float(np.abs(a[0] - b[0]).max()) for a, b in zip(outputs, reference, strict=True))
            report = box_report(_detections(outputs, images, cfg.size, REPORT_THRESHOLD), truths, classes)
            return {"outputs": outputs, "max_abs_score_diff": diff, "val_map50": report["map50"]}

        checks = {"fp32": measured(fp32)}
        if checks["fp32"]["max_abs_score_diff"] > FP32_MAX_SCORE_DIFF:
            raise ExportError(
                f"ONNX Runtime's scores differ from torch's by up to {checks['fp32']['max_abs_score_diff']:.2g} "
                f"(> {FP32_MAX_SCORE_DIFF}); the export is not kept."
            )
        feed = {"input": preprocess([letterbox(images[0][:, :, ::-1], cfg.size)[0]], spec)}
        latency = {"fp32": latency_ms(fp32, feed)}
        final, chosen = fp32, "fp32"
        gate = None
        if precision in ("int8", "auto"):
            from .quantize import quantize_with_gate

            train = read_split(Path(cfg.data), "train", len(classes))[:64]
            calib = [preprocess([letterbox(s.image[:, :, ::-1], cfg.size)[0] for s in train[k : k + 8]], spec)
                     for k in range(0, len(train), 8)]  # fmt: skip
            gate = quantize_with_gate(
                slim, fp32, tmp, calib, lambda path: measured(path)["val_map50"], INT8_MAX_MAP_DROP,
                required=precision == "int8", metric="val_map50", eval_images=len(val),
            )  # fmt: skip
            if gate["kept"] is not None:
                int8 = Path(gate["kept"]["path"])
                checks["int8"] = measured(int8)
                latency["int8"] = latency_ms(int8, feed)
                gate["faster"] = latency["int8"] < latency["fp32"]
                if precision == "int8" or gate["faster"]:
                    final, chosen = int8, "int8"
            gate["decision"] = (
                f"int8 kept: {gate['kept']['name']}, val mAP50 {gate['fp32_val_map50']:.4f} -> "
                f"{checks['int8']['val_map50']:.4f}, {latency['fp32']:.1f} -> {latency['int8']:.1f} ms per crop"
                if chosen == "int8"
                else "fp32 kept: " + ("int8 is not faster here" if gate["kept"] else "no int8 candidate passed")
            )
            for c in gate["candidates"]:
                c.pop("path", None)
            gate["kept"] = gate["kept"] and gate["kept"]["name"]
        outputs = checks[chosen]["outputs"]
        reported = _detections(outputs, images, cfg.size, REPORT_THRESHOLD)
        table = []
        for t in THRESHOLDS:
            confident = [d.above(t) for d in reported]
            report = box_report(reported, truths, classes, [len(c) for c in confident])
            table.append({"threshold": t, "count_spearman": report["count_spearman"],
                          "box_f1": round(box_f1(confident, truths), 4)})  # fmt: skip
        best = max(table, key=lambda row: (row["count_spearman"] or -1, row["box_f1"]))
        margin, min_face = _framing(images)
        counts = [len(t) for t in truths if len(t)]
        manifest = {
            "kind": "detector",
            "name": Path(out).name,
            "model": "model.onnx",
            "attribute": "wrinkles",
            "domain": "face",
            "applies_to": "face",
            "input": spec.to_manifest(),
            "outputs": {"scores": "scores", "boxes": "boxes"},
            "classes": classes,
            "score_threshold": best["threshold"],
            "report_threshold": REPORT_THRESHOLD,
            "nms_iou": NMS_IOU,
            "face_margin": margin,
            "min_face_px": min_face,
            "reference_count": float(np.median(counts)),
            "precision": chosen,
            "architecture": "centernet-mnv2",
            "decoder_dim": cfg.decoder_dim,
            "producer": producer(opset=opset),
            "optimization": stats,
            "verification": {
                "val_images": len(val),
                "torch_val_map50": torch_map,
                **{
                    name: {"max_abs_score_diff": c["max_abs_score_diff"], "val_map50": c["val_map50"]}
                    for name, c in checks.items()
                },
                **({"int8_gate": gate} if gate else {}),
                "latency_ms": latency,
                "thresholds": table,
            },
            "source": {"run": str(Path(run).resolve())},
        }
        with staged_bundle(Path(out)) as stage:
            (stage / "model.onnx").write_bytes(final.read_bytes())
            write_manifest(stage, manifest, ["model.onnx"])
    return manifest
