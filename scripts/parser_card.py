"""Write the face parser's model card from its run, its bundle and the measured tables.

python scripts/parser_card.py RUN_DIR BUNDLE [--sizes runs/parser-sizes.md] [--detection runs/detection.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PARTS = ("skin", "nose", "eyes", "brows", "lips", "inner_mouth", "hair", "ears", "neck")


def table(path: Path | None) -> str:
    if path is None or not path.is_file():
        return "(not measured)"
    return "\n".join(line for line in path.read_text().splitlines() if line.startswith("|"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--sizes", type=Path, default=None)
    parser.add_argument("--detection", type=Path, default=None)
    args = parser.parse_args()
    metrics = json.loads((args.run / "metrics.json").read_text())
    cfg = json.loads((args.run / "config.json").read_text())
    manifest = json.loads((args.bundle / "manifest.json").read_text())
    test, val = metrics["test"], metrics["val"]
    gate = manifest["verification"].get("int8_gate", {})
    size_mb = (args.bundle / "model.onnx").stat().st_size / 1e6
    classes = "\n".join(
        f"| {name} | {m['f1']:.3f} | {m['iou']:.3f} |" for name, m in test["classes"].items() if name != "background"
    )
    text = f"""# face-parser-mnv2: face parser (19 CelebAMask-HQ labels)

The face parser `skin-infer` uses by default (`--parser auto`): YuNet finds each face, this model labels every
pixel of the face's crop (the box and a quarter of its size on each side), and the runtime cuts the skin regions
from the labels (forehead above the brows, cheeks below the eyes beside the nose, nose, chin below the lips,
face skin = skin + nose). It also confirms detections: a box whose parse shows no nose and no eyes, brows or
mouth is dropped (pets, patterns, dermoscopy images). Trained by this project.

## Data and licence
CelebAMask-HQ mini set (`shared/data/celebamask_mini`): 1,000 train + 100 test celebrity portraits, 512x512,
19-class label maps (Lee et al., "MaskGAN", CVPR 2020). 100 of the 1,000 train images (fixed seed) are the
validation split; `test/` was read once, for the figures below. Licence: CelebA / CelebAMask-HQ terms,
**non-commercial research and educational use only** — so this model is too.

Labels: {", ".join(manifest["id2label"].values())}. "l_" is the subject's left (on the image's right).

## Model
- Architecture: `{cfg["arch"]}` — timm's MobileNetV2 encoder (ImageNet weights imported offline from the TFLite
  model in `shared/weights/imagenet_mobilenet_v2`) under a SegFormer all-MLP decoder ({cfg["decoder_dim"]}
  channels, logits at stride 4); {metrics["parameters_m"]:.2f} M parameters.
- Input: {cfg["size"]}x{cfg["size"]} RGB, the face crop stretched to the square, scaled to [-1, 1].
- Bundle: `{manifest["precision"]}` ONNX, {size_mb:.1f} MB. int8 gate on the 100 validation pairs:
  {gate.get("decision", "not run")}.

## Training recipe
{cfg["epochs"]} epochs, batch {cfg["batch_size"]}, AdamW lr {cfg["lr"]} (weight decay {cfg["weight_decay"]}), warm-up
then cosine; loss cross-entropy + {cfg["dice_weight"]} x soft Dice (small parts weigh as much as skin);
augmentation: scale 0.75-1.45 (tight to loose framing, as the runtime's crops), rotation ±20°, shifts, black or
replicated borders, horizontal flip that swaps the left/right labels, colour jitter, blur. Checkpoint selected on
validation mean F1 (epoch {metrics["best_epoch"]} of {metrics["epochs_run"]}), on 2 CPU cores.

Reproduce: `bash scripts/train_parser.sh` (about an hour on 2 cores), then
`skin export parser --run runs/parser-mnv2-256 --out models/face-parser-mnv2 --precision auto` and
`python scripts/parser_card.py runs/parser-mnv2-256 models/face-parser-mnv2 --sizes ... --detection ...`.

## Results on test (100 portraits, never used for training or selection)
- pixel accuracy **{test["pixel_accuracy"]:.3f}**; mean F1 over {", ".join(PARTS)} **{test["mean_f1"]:.3f}**
  (left/right merged per part); skin F1 **{test["part_f1"]["skin"]:.3f}**. Validation: mean F1 {val["mean_f1"]:.3f}.
- per part: {", ".join(f"{p} {test['part_f1'][p]:.3f}" for p in PARTS)}.
- Anchors: a 0.47 M-parameter U-Net on this mini set reports pixel accuracy 0.84 and mean Dice 0.62; parsers
  trained on all 30,000 CelebAMask-HQ images report mean F1 0.80-0.87.

| class | F1 | IoU |
|---|---|---|
{classes}

### Input size (the model is fully convolutional; it was trained at {cfg["size"]} px only)
{table(args.sizes)}

### Face detection with the parse as evidence (`scripts/detection_figures.py`)
{table(args.detection)}

## Limits: where it fails
- Celebrity portraits: mostly frontal, well lit, fair-skinned, adult. Strong profiles lose the far side (the
  runtime reports the far cheek as not visible), and darker skin under dim light is parsed less surely — look at
  the FairFace crops' overlays before trusting measures on them.
- Small faces in group photos (under ~48 px) are parsed coarsely: eyes and lips often vanish; regions are then
  rough, and detection falls back on YuNet's own score.
- Glasses, hats, beards and hands over the face are rare in the training set.
- Not a medical device; research / non-commercial use only.
"""
    (args.bundle.parent / f"{args.bundle.name}.md").write_text(text)
    print(f"wrote {args.bundle.parent / f'{args.bundle.name}.md'}")


if __name__ == "__main__":
    main()
