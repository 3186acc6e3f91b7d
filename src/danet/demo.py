"""``danet demo``: predictions, attention figures and mIoU on the CamVid samples in the package.

It uses the bundled ``camvid`` model. An installation without it (a package built without its
model files) trains a tiny one on the six sample images instead, and says so: that model's mIoU,
measured on the images it was trained on, only shows that the pipeline runs end to end.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import danet.assets as assets
from danet.analysis.attention_maps import attention_figures
from danet.data import build_dataset
from danet.inference.files import predict_paths
from danet.loading import load
from danet.model.card import model_card
from danet.model.checkpoint import TRAIN_STATE_NAME, bundled_models
from danet.training.config import TrainConfig
from danet.training.evaluate import evaluate
from danet.training.loop import train

SAMPLES_DIR = assets.samples_dir("camvid")
"""Six frames of CamVid's val sequence 0016E5 in the SegNet layout (``val/``, ``valannot/``)."""

DEMO_IMAGE = "0016E5_08049.jpg"
DEMO_POINTS = {"car": (426, 237), "road": (280, 295), "building": (98, 124), "cyclist": (227, 202)}
"""Pixels of ``DEMO_IMAGE`` whose position attention the demo draws, by ground-truth class."""


def tiny_recipe(out: str | Path) -> TrainConfig:
    """A short training on the CPU: ImageNet MobileNetV2, half-size images, 60 iterations."""
    return TrainConfig(
        dataset="camvid",
        data_root=str(SAMPLES_DIR),
        train_split="val",
        val_split="",
        out=str(out),
        backbone="mobilenetv2_100",
        pretrained="imagenet",
        input_size=[180, 240],
        base_size=[180, 240],
        crop_size=[128, 160],
        scale_range=[0.75, 1.25],
        batch_size=4,
        workers=0,
        iters=60,
        warmup_iters=5,
        checkpoint_every=20,
        device="cpu",
        seed=0,
    )


def train_tiny_model(out: str | Path) -> Path:
    """Train :func:`tiny_recipe` into ``out`` (resuming a run left there) and return the folder."""
    cfg = tiny_recipe(out)
    train(cfg, resume=(Path(out) / TRAIN_STATE_NAME).is_file())
    return Path(out)


def run_demo(
    out: str | Path, checkpoint: str | Path | None = None, device: str = "cpu"
) -> dict[str, Any]:
    """Predict, draw attention and evaluate on the bundled samples; returns the metrics.

    ``checkpoint`` defaults to the bundled ``camvid`` model, or to a tiny model trained here
    when the installation has no bundled model.
    """
    out = Path(out)
    images = SAMPLES_DIR / "val"
    trained_here = checkpoint in (None, "camvid") and "camvid" not in bundled_models()
    if trained_here:
        run = out / "tiny_model"
        print("This installation has no bundled CamVid model, so the demo uses a tiny one instead:")
        if (run / TRAIN_STATE_NAME).is_file():
            print(f"  reusing the one trained in {run} (delete it to train again)")
        else:
            print("  training it on the sample images (about a minute on a CPU)")
        checkpoint = train_tiny_model(run)
    elif checkpoint is None:
        checkpoint = "camvid"
    print(f"checkpoint: {checkpoint}")

    model = load(checkpoint, map_location=device)  # opened once, for all three
    predictions = out / "predictions"
    predict_paths(model, [images], predictions)
    figures = attention_figures(
        model, images / DEMO_IMAGE, list(DEMO_POINTS.values()), out / "attention"
    )
    dataset = build_dataset("camvid", SAMPLES_DIR, "val")
    metrics = evaluate(model, dataset)
    where = "the images it was trained on" if trained_here else "the bundled samples"
    print(f"mIoU {100 * metrics['miou']:.1f}% on {len(dataset)} images ({where})")
    card = None if trained_here else model_card(str(checkpoint))
    if card is not None:
        print(f"  {len(dataset)} CamVid val frames: {card.on_split('val')}")
        print(
            "  six frames are too few to measure a model by: the figure shows that everything runs"
        )
    print(f"overlays:  {predictions}/*_overlay.png")
    print(f"attention: {', '.join(str(p) for p in figures)}")
    print("  position attention of pixels on a " + ", a ".join(DEMO_POINTS) + f" in {DEMO_IMAGE}")
    return metrics
