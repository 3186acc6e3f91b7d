"""What ``main`` does before a command runs: note the files it reads, check without torch that
its inputs exist and its outputs can be written, then resolve and say ``--device``."""

from __future__ import annotations

import argparse
from pathlib import Path

from danet.cli.models import backend_of, say_device, settings_from
from danet.utils.writable import check_writable_dir, check_writable_file


def check_paths(args: argparse.Namespace) -> None:
    """The checks that need no torch, before ``--device`` loads it: the inputs exist, the
    output folder or file can be written, the inference flags make sense."""
    for given in [*getattr(args, "inputs", []), getattr(args, "image", None)]:
        if given is not None and not Path(given).exists():
            raise FileNotFoundError(f"{given}: no such file or folder")
    if args.command in ("predict", "attention", "demo"):
        check_writable_dir(args.out)
    if args.command == "export":
        check_writable_file(args.onnx)
    if getattr(args, "json", None):
        check_writable_file(args.json)
    if hasattr(args, "scales"):
        settings_from(args)


def _model_files(name_or_path: str) -> list[Path]:
    """The files a model is read from (bundled name, folder or file), for :func:`note_inputs_of`."""
    if name_or_path.endswith(".onnx"):  # the torch-free path: nothing beside it is read
        return [Path(name_or_path)]
    from danet.model.paths import CONFIG_NAME, TRAIN_STATE_NAME, WEIGHTS_NAME, resolve

    try:
        path = resolve(name_or_path)
    except (OSError, ValueError):
        return []  # the command says what is wrong with it
    if path.is_dir():
        return [path / name for name in (CONFIG_NAME, WEIGHTS_NAME, TRAIN_STATE_NAME)]
    return [path, path.with_name(CONFIG_NAME)] if path.suffix == ".safetensors" else [path]


def note_inputs_of(args: argparse.Namespace) -> None:
    """Note the files this command reads before it writes anything, so that none of its outputs
    lands on them (:mod:`danet.utils.outputs`); the readers of images and datasets note theirs
    too."""
    from danet.data.io import list_images
    from danet.utils.outputs import note_inputs

    paths: list[Path] = []
    for flag in ("checkpoint", "compare", "init_weights", "pretrained"):
        value = getattr(args, flag, None)
        if isinstance(value, str) and value not in ("imagenet", "none"):
            paths += _model_files(value)
    paths += [Path(getattr(args, flag)) for flag in ("image", "src") if getattr(args, flag, None)]
    paths += [Path(p) for p in getattr(args, "inputs", None) or [] if not Path(p).is_dir()]
    for item in getattr(args, "calibration", None) or []:  # predict's folders: note on reading
        folder = Path(item)
        paths += list_images(folder, recursive=True) if folder.is_dir() else [folder]
    note_inputs(paths)


def check_device(args: argparse.Namespace) -> None:
    """Resolve ``--device`` (train checks its recipe's) and say which device is used;
    onnxruntime runs on the CPU, and saying so loads no torch."""
    if not getattr(args, "device", None) or args.command == "train":
        return
    if hasattr(args, "backend") and backend_of(args) == "onnxruntime":
        if args.device not in ("auto", "cpu"):
            raise ValueError(f"--device {args.device}: --backend onnxruntime runs on the CPU")
        args.device = "cpu"
        if not getattr(args, "quiet", False):
            print("device: cpu")
        return
    args.device = say_device(args.device, getattr(args, "quiet", False))
