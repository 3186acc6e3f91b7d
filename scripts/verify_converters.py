"""Check ``danet convert`` against the real code: mmsegmentation 1.2.2 and the DANet authors' source.

Not part of the test suite (it needs mmseg, which danet does not depend on). In a scratch venv:

    python3 -m venv /tmp/mmvenv
    /tmp/mmvenv/bin/pip install torch==2.14.1 torchvision==0.29.1 timm==1.0.31 safetensors \\
        mmsegmentation==1.2.2 mmcv-lite==2.1.0 mmengine ftfy regex   # + danet's own dependencies
    git clone https://github.com/junfu1115/DANet /tmp/DANet-src
    PYTHONPATH=src /tmp/mmvenv/bin/python scripts/verify_converters.py --authors-src /tmp/DANet-src

For each model: build it with the real code from its real config, give it random weights and BN
statistics measured on random images, save it as that code base saves checkpoints, run
``danet convert``, and compare ``out``, ``pam``, ``cam`` (and ``aux``) on the same normalised input.
Passes when max |diff| <= 1e-3 * max |logit| and the argmax agrees on >= 99.9% of the pixels. It
also checks that a checkpoint whose pickle would run code is refused and runs nothing, and with
``--write-layouts`` rewrites the key/shape lists that ``tests/test_convert.py`` pins.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import danet
from danet.cli import main as danet_cli

ROOT = Path(__file__).resolve().parents[1]
SIZE = (193, 385)  # not a multiple of 8: the upsampling's align_corners matters
LARGE = (513, 1025)  # N = 65 x 129 positions: danet's PAM takes its blocked O(N) path here
MEAN, STD = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])


def stub_mmcv_ops() -> None:
    """mmseg imports mmcv.ops (compiled, absent from mmcv-lite); DANet never uses it."""
    ops = types.ModuleType("mmcv.ops")

    def missing(name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {})

    ops.__getattr__ = missing
    sys.modules["mmcv.ops"] = ops


def test_image(seed: int = 0, size: tuple[int, int] = SIZE) -> torch.Tensor:
    """A smooth random RGB image in [0, 1], normalised with ImageNet's mean and std."""
    gen = torch.Generator().manual_seed(seed)
    rgb = F.interpolate(torch.rand(1, 3, 13, 25, generator=gen), size, mode="bicubic")
    rgb = (rgb + 0.1 * torch.rand(1, 3, *size, generator=gen)).clamp(0, 1)
    return (rgb - MEAN[:, None, None]) / STD[:, None, None]


@torch.no_grad()
def randomise(model: nn.Module, forward, seed: int) -> None:
    """Random BN affine parameters and attention gammas, then BN statistics measured on images."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if "gamma" in name:  # PAM/CAM scales (0 at init would switch the attention off)
            p.fill_(0.3 + 0.5 * torch.rand(1, generator=gen).item())
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=gen))
            m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))
            m.reset_running_stats()
            m.momentum = None  # cumulative average
    model.train()
    for i in range(2):
        forward(torch.cat([test_image(100 + i), test_image(200 + i)]))
    model.eval()


def compare(name: str, ours: dict, theirs: dict) -> bool:
    ok = True
    for key, ref in theirs.items():
        got = ours[key]
        rel = ((got - ref).abs().max() / ref.abs().max()).item()
        agree = (got.argmax(1) == ref.argmax(1)).float().mean().item()
        good = rel <= 1e-3 and agree >= 0.999
        ok &= good
        print(
            f"  {name:38s} {key:4s} max|diff|/max|logit| {rel:.2e}  argmax agreement "
            f"{100 * agree:7.3f}%  {'ok' if good else 'FAIL'}"
        )
    return ok


def convert_and_run(src: Path, out: Path, x: torch.Tensor, *flags: str) -> dict:
    status = danet_cli(["convert", str(src), "--out", str(out), *flags])
    if status != 0:
        raise SystemExit(f"danet convert {src} failed with status {status}")
    model = danet.load(out)
    with torch.no_grad():
        return model(x)


def write_layout(state: dict[str, torch.Tensor], path: Path) -> None:
    rows = [f"{k} {'x'.join(map(str, v.shape)) or 'scalar'}" for k, v in state.items()]
    path.write_text("\n".join(rows) + "\n")
    print(f"  wrote {path.relative_to(ROOT)} ({len(rows)} tensors)")


# --- mmsegmentation -------------------------------------------------------------------------------

MMSEG_CASES = [
    ("danet_r50-d8_4xb2-40k_cityscapes-512x1024", "0.x"),
    ("danet_r101-d8_4xb2-80k_cityscapes-769x769", "0.x"),
    ("danet_r50-d8_4xb4-80k_ade20k-512x512", "1.x"),
    ("danet_r101-d8_4xb4-20k_voc12aug-512x512", "1.x"),
]


def mmseg_model(config_name: str):
    import mmseg
    from mmengine.config import Config
    from mmseg.registry import MODELS

    configs = Path(mmseg.__file__).parent / ".mim" / "configs" / "danet"
    cfg = Config.fromfile(configs / f"{config_name}.py")
    cfg.model.pretrained = None
    return MODELS.build(cfg.model), cfg


def mmseg_forward(model, x: torch.Tensor) -> None:
    """Backbone and both heads (to measure BN statistics in train mode)."""
    feats = model.extract_feat(x)
    model.decode_head(feats)
    model.auxiliary_head(feats)


def mmseg_outputs(model, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """out/pam/cam (and aux) as mmseg computes them, resized as its heads resize them."""
    from mmseg.models.utils import resize

    with torch.no_grad():
        feats = model.extract_feat(x)
        metas = [dict(img_shape=x.shape[2:], ori_shape=x.shape[2:], pad_shape=x.shape[2:])]
        out = model.encode_decode(x, metas)  # what mmseg's inference uses
        pam_cam, pam, cam = model.decode_head(feats)
        aux = model.auxiliary_head(feats)
    corners = model.decode_head.align_corners
    up = {"size": x.shape[2:], "mode": "bilinear", "align_corners": corners}
    full = resize(pam_cam, **up)
    assert torch.equal(full, out), "encode_decode disagrees with the head's own output"
    return {
        "out": out,
        "pam": resize(pam, **up),
        "cam": resize(cam, **up),
        "aux": resize(aux, **up),
    }


def save_like_mmseg(model, cfg, style: str, path: Path) -> None:
    """What mmcv 1.x (the published 0.x checkpoints) or mmengine's runner writes, less hooks."""
    from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu
    from mmseg.registry import DATASETS

    dataset = cfg.train_dataloader.dataset
    dataset = dataset.datasets[0] if dataset.type == "ConcatDataset" else dataset  # VOC + aug
    dataset_type = DATASETS.get(dataset.type)
    classes, palette = dataset_type.METAINFO["classes"], dataset_type.METAINFO["palette"]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()  # momentum buffers, as a real run's optimizer state has
    if style == "0.x":
        meta = {
            "env_info": "sys.platform: linux",
            "config": cfg.pretty_text,
            "seed": np.int64(0),
            "exp_name": "danet.py",
            "mmseg_version": "0.5.0",
            "mmcv_version": "1.0.2",
            "CLASSES": tuple(classes),
            "PALETTE": [list(c) for c in palette],
            "epoch": 1,
            "iter": 40000,
        }
    else:
        meta = {
            "cfg": cfg.pretty_text,
            "seed": 0,
            "epoch": 0,
            "iter": 80000,
            "mmengine_version": "0.10.7",
            "dataset_meta": {"classes": tuple(classes), "palette": palette},
        }
    checkpoint = {
        "meta": meta,
        "state_dict": weights_to_cpu(model.state_dict()),
        "optimizer": optimizer.state_dict(),
    }
    save_checkpoint(checkpoint, str(path))


def verify_mmseg(tmp: Path, write_layouts: bool) -> bool:
    stub_mmcv_ops()
    from mmseg.utils import register_all_modules

    register_all_modules()
    ok = True
    x = test_image()
    for i, (name, style) in enumerate(MMSEG_CASES):
        model, cfg = mmseg_model(name)
        randomise(model, lambda x, m=model: mmseg_forward(m, x), seed=i)
        theirs = mmseg_outputs(model, x)
        src = tmp / f"{name}.pth"
        save_like_mmseg(model, cfg, style, src)
        ours = convert_and_run(src, tmp / name, x)
        print(f"mmseg {name} ({style} checkpoint, {theirs['out'].shape[1]} classes)")
        ok &= compare(name, ours, theirs)
        if i == 0:  # a larger input, where danet's position attention is blocked, not naive
            big = test_image(7, LARGE)
            with torch.no_grad():
                ours_big = danet.load(tmp / name)(big)
            print(f"  same model, {LARGE[0]}x{LARGE[1]} input (danet's PAM blocked):")
            ok &= compare(f"{name}, large", ours_big, mmseg_outputs(model, big))
        if "769x769" in name:  # control: align_corners=True must come from the config in meta
            wrong = convert_and_run(src, tmp / "wrong", x, "--no-align-corners")
            print("  control, converted with --no-align-corners (must not pass):")
            ok &= not compare(f"{name}, wrong option", wrong, theirs)
        if write_layouts and name.startswith("danet_r50") and style == "0.x":
            small, _ = mmseg_model(name)
            small.decode_head.conv_seg = nn.Conv2d(512, 3, 1)
            small.decode_head.pam_conv_seg = nn.Conv2d(512, 3, 1)
            small.decode_head.cam_conv_seg = nn.Conv2d(512, 3, 1)
            small.auxiliary_head.conv_seg = nn.Conv2d(256, 3, 1)
            write_layout(
                small.state_dict(), ROOT / "tests" / "convert" / "keys" / "mmseg_danet_r50_keys.txt"
            )
    return ok


# --- the authors' code ----------------------------------------------------------------------------


def import_authors_danet(src: Path):
    """Import encoding/models/sseg/danet.py, base.py, backbone/resnet.py and nn/da_att.py from
    the authors' repository, with stand-ins for the parts of their package that need compiling."""
    stub_root = Path(tempfile.mkdtemp(prefix="encoding_stub_"))
    pkg = stub_root / "encoding"
    files = {
        "__init__.py": "",
        "nn/__init__.py": (
            "import torch\nfrom .da_att import PAM_Module, CAM_Module\n"
            "SplAtConv2d = DropBlock2D = RFConv2d = None\n"
            "class GlobalAvgPool2d(torch.nn.Module):\n"
            "    def forward(self, x):\n        return x.mean((2, 3))\n"
        ),
        "utils/__init__.py": "batch_pix_accuracy = batch_intersection_union = None\n",
        "models/__init__.py": "",
        "models/model_store.py": (
            "import tempfile, torch\n"
            "def get_model_file(name, root=None):\n"  # ImageNet weights: none (strict=False)
            "    path = tempfile.mktemp(suffix='.pth'); torch.save({}, path); return path\n"
        ),
        "models/backbone/__init__.py": (
            "from .resnet import *\n"
            "resnest50 = resnest101 = resnest200 = resnest269 = resnet50s = resnet101s = None\n"
            "resnet152s = resnet50d = resnext50_32x4d = resnext101_32x8d = xception65 = None\n"
            "wideresnet38 = wideresnet50 = None\n"
        ),
        "models/sseg/__init__.py": "",
    }
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    for rel in ("nn/da_att.py", "models/backbone/resnet.py", "models/sseg/base.py"):
        (pkg / rel).write_text((src / "encoding" / rel).read_text())
    # danet.py imports torch.nn.functional.upsample, which newer torch versions lack.
    text = (src / "encoding/models/sseg/danet.py").read_text()
    old = "from torch.nn.functional import upsample,normalize"
    assert old in text, "danet.py changed upstream"
    text = text.replace(old, "from torch.nn.functional import interpolate as upsample, normalize")
    (pkg / "models/sseg/danet.py").write_text(text)
    sys.path.insert(0, str(stub_root))
    from encoding.models.sseg.danet import DANet

    return DANet


def authors_model(DANet, nclass: int, backbone: str = "resnet101") -> nn.Module:
    """As the release's test command builds it (BatchNorm2d in place of their SyncBatchNorm)."""
    return DANet(
        nclass,
        backbone=backbone,
        aux=False,
        se_loss=False,
        norm_layer=nn.BatchNorm2d,
        multi_grid=True,
        multi_dilation=[4, 8, 16],
        os=8,
        no_deepstem=True,
    )


def verify_authors(src: Path, tmp: Path, write_layouts: bool) -> bool:
    DANet = import_authors_danet(src)
    ok = True
    x = test_image()
    for i, (backbone, nclass) in enumerate([("resnet101", 19), ("resnet50", 7)]):
        model = authors_model(DANet, nclass, backbone)
        assert [b.conv2.dilation[0] for b in model.pretrained.layer4] == [4, 8, 16]
        randomise(model, model, seed=10 + i)
        with torch.no_grad():
            out, pam, cam = model(x)
        theirs = {"out": out, "pam": pam, "cam": cam}
        optimizer = torch.optim.SGD(model.parameters(), lr=0.003, momentum=0.9)
        path = tmp / f"DANet_{backbone}.pth.tar"
        torch.save(  # experiments/segmentation/train.py, utils.save_checkpoint
            {
                "epoch": 240,
                "state_dict": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "best_pred": np.float64(0.8795),
            },
            path,
        )
        flags = ["--dataset", "cityscapes"] if nclass == 19 else []
        ours = convert_and_run(path, tmp / f"authors_{backbone}", x, *flags)
        print(f"authors' DANet {backbone} ({nclass} classes)")
        ok &= compare(f"authors {backbone}", ours, theirs)
        if backbone == "resnet101":  # a larger input, where danet's PAM is blocked, not naive
            big = test_image(7, LARGE)
            with torch.no_grad():
                theirs_big = dict(zip(("out", "pam", "cam"), model(big), strict=True))
                ours_big = danet.load(tmp / f"authors_{backbone}")(big)
            print(f"  same model, {LARGE[0]}x{LARGE[1]} input (danet's PAM blocked):")
            ok &= compare(f"authors {backbone}, large", ours_big, theirs_big)
        if backbone == "resnet50":  # control: a wrong build option must show up as a FAIL
            wrong = convert_and_run(path, tmp / "wrong", x, "--no-align-corners")
            print("  control, converted with --no-align-corners (must not pass):")
            ok &= not compare("authors resnet50, wrong option", wrong, theirs)
        if write_layouts and backbone == "resnet50":
            small = authors_model(DANet, 3, backbone)
            write_layout(
                small.state_dict(),
                ROOT / "tests" / "convert" / "keys" / "original_danet_r50_keys.txt",
            )
    return ok


def verify_refusal(tmp: Path) -> bool:
    marker = tmp / "code-ran"

    class RunsCode:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').close()",))

    path = tmp / "evil.pth"
    torch.save({"state_dict": {}, "meta": RunsCode()}, path)
    status = danet_cli(["convert", str(path), "--out", str(tmp / "evil")])
    ok = status == 2 and not marker.exists()
    print(
        f"code-running pickle: exit status {status}, code ran: {marker.exists()}  "
        f"{'ok' if ok else 'FAIL'}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors-src", type=Path, required=True, help="junfu1115/DANet checkout")
    parser.add_argument(
        "--write-layouts", action="store_true", help="rewrite tests/convert/keys/*.txt"
    )
    parser.add_argument("--only", choices=("mmseg", "authors"), help="run one half")
    args = parser.parse_args()
    torch.manual_seed(0)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ok &= verify_refusal(tmp)
        if args.only in (None, "authors"):
            ok &= verify_authors(args.authors_src, tmp, args.write_layouts)
        if args.only in (None, "mmseg"):
            ok &= verify_mmseg(tmp, args.write_layouts)
    print("ALL OK" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
