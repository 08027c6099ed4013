"""Write a shipped bundle's model card (README.md in the bundle folder) from its manifest and its run.

python scripts/model_card.py RUN_DIR BUNDLE_DIR
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path


def bundle_on_test(bundle: Path, config: dict) -> tuple[float, float]:
    """Balanced accuracy and macro-F1 of the shipped bundle itself, through the runtime, on the test split."""
    from sklearn.metrics import balanced_accuracy_score, f1_score

    from skin_infer.runtime import Classifier, read_image
    from skin_infer.train.config import TrainConfig
    from skin_infer.train.data import read_records

    records, _ = read_records(TrainConfig.from_dict(config))
    test = [r for r in records if r.split == "test"]
    classifier = Classifier(bundle, "cpu", threads=2)
    predicted = []
    for i in range(0, len(test), 64):
        logits, _ = classifier.run([read_image(r.path) for r in test[i : i + 64]])
        predicted += logits.argmax(1).tolist()
    truth = [r.targets[0] for r in test]
    return balanced_accuracy_score(truth, predicted), f1_score(truth, predicted, average="macro")


def main() -> None:
    run, bundle = Path(sys.argv[1]), Path(sys.argv[2])
    manifest = json.loads((bundle / "manifest.json").read_text())
    config = json.loads((run / "config.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    test = metrics["test"]
    head = test["heads"]["dx"]
    labels = manifest["heads"][0]["labels"]
    shutil.copy(run / "confusion_test_dx.png", bundle.parent / f"{bundle.name}-confusion-test.png")
    q = manifest.get("quantization", {})
    shipped = bundle_on_test(bundle, config)
    latency = q.get("latency_ms", {})
    lines = [
        f"# {bundle.name}: skin-lesion classifier for dermoscopy close-ups",
        "",
        "The lesion classifier of `skin-infer`'s default models. Trained by this project. Its bundle declares "
        "`domain: dermoscopy`, `applies_to: image`: the runtime runs it only on photos without a face that the "
        "domain model takes for dermoscopy, never on face photos.",
        "",
        "**Not a medical device.** It sorts dermoscopy images into 7 HAM10000 categories for research, teaching and "
        "prototyping; it must not be used to diagnose anyone.",
        "",
        "## Data and licence",
        "HAM10000 (Tschandl et al., Scientific Data 2018, doi:10.1038/sdata.2018.161): 5,984 images, one per lesion, "
        "224x224, with a fixed lesion-grouped, class-stratified split (train 4,190 / val 897 / test 897). "
        "The data is licensed **CC BY-NC-SA 4.0**, so this model is too: **non-commercial use only**, share alike, "
        "with attribution.",
        "",
        "Labels: " + ", ".join(f"`{c}`" for c in labels) + " (actinic keratosis / intraepithelial carcinoma, basal "
        "cell carcinoma, benign keratosis, dermatofibroma, melanoma, melanocytic nevus, vascular lesion).",
        "",
        "## Model",
        f"- Architecture: timm `{config['model']}`, initialised from ImageNet weights imported offline from the "
        "TFLite MobileNetV2 in `shared/weights/imagenet_mobilenet_v2` (`python -m skin_infer.train.import_weights`).",
        f"- Input: {config['img_size']}x{config['img_size']} RGB, shorter side to floor({config['img_size']}/"
        f"{config['crop_pct']}) then centre crop, scaled to [-1, 1] (mean/std 0.5).",
        f"- Bundle: `{manifest['precision']}` ONNX, {(bundle / 'model.onnx').stat().st_size / 1e6:.1f} MB, opset "
        f"{manifest['producer']['opset']}, with an in-graph class-activation map (`--explain`).",
        "",
        "## Training recipe",
        f"{config['epochs']} epochs, batch {config['batch_size']}, AdamW lr {config['lr']} (weight decay "
        f"{config['weight_decay']}), cosine schedule with {config['warmup_epochs']} warm-up epoch, loss "
        f"`{config['loss']}` (focal gamma {config['focal_gamma']}, class-balanced beta {config['cb_beta']}), sampler "
        f"`{config['sampler']}`, augmentation `{config['augment']}`, seed {config['seed']}, on CPU. Checkpoint "
        f"selected by balanced accuracy on val (epoch {metrics['best_epoch']} of {metrics['epochs_run']}).",
        "",
        "Reproduce (about an hour on a 2-core CPU, the three recipes of the imbalance study in parallel):",
        "```bash",
        "bash scripts/imbalance_study.sh runs/imbalance",
        f"skin export classifier runs/imbalance/{run.name} --out models/{bundle.name} --precision auto",
        f"python scripts/model_card.py runs/imbalance/{run.name} models/{bundle.name}",
        "```",
        "",
        "## Results on the test split (897 images, never used for training or selection)",
        f"- the shipped {manifest['precision']} bundle, through the runtime: balanced accuracy **{shipped[0]:.3f}**, "
        f"macro-F1 **{shipped[1]:.3f}**",
        f"- the fp32 checkpoint it was exported from: balanced accuracy {test['balanced_accuracy']:.3f}, macro-F1 "
        f"{test['macro_f1']:.3f}, accuracy {test['accuracy']:.3f} (per-class recall below)",
        "",
        "| class | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
        "| recall | " + " | ".join(f"{head['recall'][c]:.2f}" for c in labels) + " |",
        "",
        f"![confusion matrix on test]({bundle.name}-confusion-test.png)",
        "",
        "For scale: a linear classifier on frozen ImageNet MobileNetV2 features reached 0.444 balanced accuracy on "
        "the official ISIC 2018 test set; the ISIC 2018 winners reached about 0.88 with full-resolution images, "
        "all 10,015 images and large ensembles.",
        "",
        "## Speed",
        (
            f"ONNX Runtime, batch 1, 2 threads, this project's 2-core CI machine: fp32 {latency['fp32']:.1f} ms, int8 "
            f"{latency['int8']:.1f} ms; {q.get('decision', '')}."
            if latency
            else "See `skin bench` for latency on your machine."
        ),
    ]
    if q:
        lines += [
            "",
            "int8 candidates (balanced accuracy on val, fp32 "
            f"{q['fp32_balanced_accuracy']:.3f}, gate: at most {100 * q['max_drop']:.0f} point lost):",
            "",
        ]
        lines += [
            f"- {c['name']}: {c['balanced_accuracy']:.3f} ({'passed' if c['passed'] else 'failed'})"
            for c in q["candidates"]
        ]
    lines += [
        "",
        "## Intended use and limits",
        "- Dermoscopy close-ups of a single lesion, like HAM10000's; `skin-infer` does not run it on face photos.",
        "- 7 classes only; anything else (rashes, acne, healthy skin) is forced into one of them.",
        "- HAM10000 is mostly fair skin from Austrian and Australian clinics; performance on darker skin tones is "
        "unmeasured.",
        f"- Low-resolution input ({config['img_size']}px) and a small CPU budget: far from the state of the art.",
        "",
    ]
    (bundle.parent / f"{bundle.name}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
