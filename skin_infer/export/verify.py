"""`skin export verify BUNDLE`: checksums and graph consistency always; parity with the source when torch is here."""

from __future__ import annotations

from pathlib import Path

from ..runtime.bundle import DIGEST, load_bundle
from .bundle_writer import ExportError


def verify_bundle(path: Path, images: Path | None = None) -> dict:
    bundle = load_bundle(path)  # manifest (its digest), format version, sha256 and size of every file
    digest = "ok" if DIGEST in bundle.manifest else "missing: re-export the bundle to protect its manifest"
    report = {"bundle": str(bundle.path), "kind": bundle.kind, "checksums": "ok", "manifest_digest": digest}
    # input/output names, shapes and label counts against the graph, as the runtime checks them on load
    if bundle.kind == "classifier":
        from ..runtime.classifier import Classifier

        Classifier(bundle, device="cpu")
    elif bundle.kind == "detector":
        from ..runtime.detector import Detector

        Detector(bundle, device="cpu")
    else:
        from ..runtime.finders import NoFaces
        from ..runtime.parsers import SegFormerParser

        SegFormerParser(bundle, NoFaces(), device="cpu")
    report["graph"] = "ok"
    try:
        report["parity"] = _parity(bundle, images)
    except ImportError as exc:  # parity needs the source framework; checksums and graph were checked without it
        report["parity"] = f"skipped: {exc.name} is not installed (pip install 'skin-infer[export]')"
    return report


def _parity(bundle, images: Path | None):
    source = bundle.manifest.get("source", {})
    if bundle.kind == "classifier" and "run" in source:
        from .run_data import FP32_TOP1, VERIFY_IMAGES, batches, image_paths, load_run, parity

        run = Path(source["run"])
        if not run.is_dir():
            return f"skipped: the source run {run} is not on this machine"
        cfg, model = load_run(run)
        labels = [[str(v) for v in h["labels"]] for h in cfg.heads]
        if [[str(v) for v in h["labels"]] for h in bundle.manifest["heads"]] != labels:
            raise ExportError(
                f"{bundle.path}: the manifest's labels {[h['labels'] for h in bundle.manifest['heads']]} are not "
                f"the source run's {labels} ({run}); the manifest was edited: re-export the bundle."
            )
        paths, _ = image_paths(cfg, None, "val", VERIFY_IMAGES)
        result = parity(model, bundle.model_path, list(batches(paths, bundle.input_spec)))
        if bundle.manifest.get("precision") == "fp32" and result["top1_agreement"] < FP32_TOP1:
            raise ExportError(
                f"{bundle.path}: top-1 agreement with torch fell to {result['top1_agreement']:.4f} (< {FP32_TOP1})"
            )
        return result
    if bundle.kind == "face-parser" and Path(source.get("model") or source.get("run") or "").is_dir():
        from ..runtime.preprocess import preprocess
        from .parser import compare, load_run_parser, load_segformer, sample_photos

        if "run" in source:
            model = load_run_parser(Path(source["run"]))[0]
        else:
            model = load_segformer(local=Path(source["model"]))[0]
        photos, what = sample_photos(images)
        result = compare(
            model, bundle.model_path, preprocess(photos, bundle.input_spec), "labels" in bundle.manifest["outputs"]
        )
        return {"photos": what, **result}
    if bundle.kind == "detector" and "run" in source:
        from .detector import detector_parity

        run = Path(source["run"])
        if not run.is_dir():
            return f"skipped: the source run {run} is not on this machine"
        return detector_parity(bundle, run)
    return "skipped: the bundle's source is not available here"
