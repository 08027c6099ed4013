"""`skin export verify BUNDLE`: checksums and graph consistency always; parity with the source when torch is here."""

from __future__ import annotations

from pathlib import Path

from ..runtime.bundle import load_bundle
from .bundle_writer import ExportError


def verify_bundle(path: Path, images: Path | None = None) -> dict:
    bundle = load_bundle(path)  # manifest, format version, sha256 and size of every file
    report = {"bundle": str(bundle.path), "kind": bundle.kind, "checksums": "ok"}
    if bundle.kind == "classifier":
        from ..runtime.classifier import Classifier

        Classifier(bundle, device="cpu")  # input/output names, shapes and label counts against the graph
    report["graph"] = "ok"
    try:
        import torch  # noqa: F401
    except ImportError:
        report["parity"] = "skipped: torch is not installed"
        return report
    source = bundle.manifest.get("source", {})
    if bundle.kind == "classifier" and "run" in source:
        from .classifier import FP32_TOP1, VERIFY_IMAGES, _batches, _image_paths, load_run, parity

        run = Path(source["run"])
        if not run.is_dir():
            report["parity"] = f"skipped: the source run {run} is not on this machine"
            return report
        cfg, model = load_run(run)
        paths, _ = _image_paths(cfg, None, "val", VERIFY_IMAGES)
        report["parity"] = parity(model, bundle.model_path, list(_batches(paths, bundle.input_spec)))
        if bundle.manifest.get("precision") == "fp32" and report["parity"]["top1_agreement"] < FP32_TOP1:
            raise ExportError(
                f"{bundle.path}: top-1 agreement with torch fell to "
                f"{report['parity']['top1_agreement']:.4f} (< {FP32_TOP1})"
            )
    elif bundle.kind == "face-parser" and "model" in source and Path(source["model"]).is_dir():
        from ..runtime.images import IMAGE_SUFFIXES, read_image
        from ..runtime.preprocess import preprocess
        from .parser import _compare, load_segformer

        model, _ = load_segformer(local=Path(source["model"]))
        if images is None:
            raise ExportError("parity of a face parser needs photos: pass --images DIR")
        photos = [read_image(p) for p in sorted(Path(images).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES][:8]
        report["parity"] = _compare(
            model, bundle.model_path, preprocess(photos, bundle.input_spec), "labels" in bundle.manifest["outputs"]
        )
    else:
        report["parity"] = "skipped: the bundle's source is not available here"
    return report
