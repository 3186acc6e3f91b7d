"""The training loop: plain functions, as in torchvision's reference scripts."""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import shlex
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Sampler

from danet.data import DATASETS, SegmentationDataset, build_dataset
from danet.data.balance import median_frequency_weights, rare_classes
from danet.data.io import without_worker_tracebacks
from danet.data.transforms import Augmented, train_transform
from danet.model.attention_inputs import PamQueriesKeys
from danet.model.checkpoint import read_training_state, save_training_state
from danet.model.danet import DANet, check_backbone, load, save_model, set_weights
from danet.training.config import RecipeError, TrainConfig
from danet.training.curves import plot_curves
from danet.training.evaluate import evaluate
from danet.training.losses import DANetLoss
from danet.training.resume import restore, resumed_config
from danet.training.runfolder import (
    METRICS_NAME,
    RUN_CONFIG_NAME,
    RUN_FILES,
    TRAIN_STATE_NAME,
    append_row,
    has_row,
    locked,
    truncate_log,
    warn,
)
from danet.utils.atomic import remove_stale_temp_files, write_text
from danet.utils.device import resolve_precision
from danet.utils.distributed import is_main, process_group
from danet.utils.progress import progress as progress_bar


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class TrainingInterrupted(RuntimeError):
    """SIGINT or SIGTERM stopped a run; the message names its checkpoint and how to resume."""


class _StopOnSignal:
    """While active, a first SIGINT or SIGTERM asks the training loop to stop after the step it is
    in (it then saves); a second one interrupts at once (``KeyboardInterrupt``)."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt(signal.Signals(signum).name)
        self.signal = signal.Signals(signum).name

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def requested(self, world: int, device: torch.device) -> bool:
        """Whether any rank was asked to stop (all ranks then stop after the same step)."""
        if world == 1:
            return self.signal is not None
        flag = torch.tensor([float(self.signal is not None)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())


def clip_to_norm(grads: list[torch.Tensor], total_norm: float, max_norm: float) -> None:
    """Scale ``grads`` in place as ``nn.utils.clip_grad_norm_`` does, given their total norm."""
    if total_norm > max_norm:
        coef = max_norm / (total_norm + 1e-6)
        for g in grads:
            g.mul_(coef)


def _until_stopped(batches: Iterator[Any], stop: _StopOnSignal) -> Iterator[Any]:
    """``batches``, ending quietly where a DataLoader worker died of the Ctrl-C that asked the run
    to stop (a terminal sends SIGINT to the workers too)."""
    try:
        yield from batches
    except Exception:
        if stop.signal is None:
            raise


def _resume_hint(run: Path) -> str:
    return f"resume with: danet train --out {shlex.quote(str(run))} --resume"


def _check_out(run: Path, overwrite: bool) -> None:
    """Refuse an ``--out`` that holds files a new run would replace, unless ``overwrite``; with
    it, remove the earlier run's files (a folder never mixes two runs)."""
    if run.exists() and not run.is_dir():
        raise NotADirectoryError(f"--out {run}: is a file; give a folder for the run")
    if not run.is_dir():
        return
    if overwrite:
        for name in RUN_FILES:
            (run / name).unlink(missing_ok=True)
        return
    if (run / TRAIN_STATE_NAME).exists():
        raise FileExistsError(
            f"{run}: already holds a training checkpoint; pass --resume to continue it, "
            "--overwrite to start over, or choose another --out"
        )
    held = sorted(p.name for p in run.iterdir() if not p.name.startswith("."))
    if held:
        more = f" and {len(held) - 3} more" if len(held) > 3 else ""
        raise FileExistsError(
            f"{run}: already holds {', '.join(held[:3])}{more}; pass --overwrite to start a new "
            "run there (a model or an earlier run in it is replaced), or choose another --out"
        )


class StepBatchSampler(Sampler):
    """Yields the batches of steps ``start..total-1``: a fresh permutation per epoch, seeded by
    (seed, epoch), split across ranks, each sample paired with its own augmentation seed.

    The batch of a step depends only on the step, so a resumed run sees the same data.
    """

    def __init__(
        self, n: int, batch_size: int, seed: int, start: int, total: int, rank: int, world: int
    ) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.total, self.rank, self.world = start, total, rank, world
        self.steps_per_epoch = max(n // (batch_size * world), 1)

    def __len__(self) -> int:
        return self.total - self.start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        perm: list[int] = []
        perm_epoch = -1
        global_batch = self.batch_size * self.world
        for step in range(self.start, self.total):
            epoch, pos = divmod(step, self.steps_per_epoch)
            if epoch != perm_epoch:
                g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                perm, perm_epoch = torch.randperm(self.n, generator=g).tolist(), epoch
                if len(perm) < global_batch:  # tiny datasets: repeat to fill one batch
                    perm = (perm * math.ceil(global_batch / len(perm)))[:global_batch]
            chunk = perm[pos * global_batch : (pos + 1) * global_batch]
            local = chunk[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
            yield [(i, (self.seed * 7_919 + epoch * 104_729 + i) % 2**32) for i in local]


def poly_lr(base_lr: float, step: int, total: int, power: float, warmup: int = 0) -> float:
    """The paper's poly schedule, ``lr * (1 - step/total)^power``, after an optional linear warmup."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    return base_lr * (1 - step / total) ** power


def build_model(cfg: TrainConfig, dataset: SegmentationDataset, pretrained: bool = True) -> DANet:
    """The DANet of a recipe, with the dataset's class names and palette in its config."""
    return DANet(
        num_classes=dataset.num_classes,
        backbone=cfg.backbone,
        output_stride=cfg.output_stride,
        pretrained=cfg.pretrained if pretrained else None,
        cam_variant=cfg.cam_variant,
        pam_reduction=cfg.pam_reduction,
        pam_scale=cfg.pam_scale,
        attention=cfg.attention,
        aux_head=cfg.aux_head,
        decoder=cfg.decoder,
        input_size=cfg.input_size,
        **dataset.meta(),
    )


def init_from(model: DANet, source: str) -> None:
    """Copy the weights of the model ``source`` (what :func:`danet.load` reads) into
    ``model``; both must have the same tensors and shapes (a mismatch names them)."""
    donor = load(source)
    ours, theirs = model.state_dict(), donor.state_dict()
    missing, extra = sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))
    if missing or extra:
        raise RecipeError(
            "{0} "
            + f"{source}: its model does not match the recipe's (missing {missing[:3]}, "
            f"unexpected {extra[:3]}); give the same backbone, attention and pam_scale as it "
            "has".replace("{", "{{").replace("}", "}}"),
            "init_weights",
        )
    set_weights(model, theirs, Path(str(source)))
    model.train()


def _param_groups(model: DANet, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Backbone at lr; head at ``head_lr_mult``; the attention's gamma, scale, query and key at
    ``head_lr_mult * attention_lr_mult``, their scalars with ``attention_weight_decay``."""
    backbone = [p for p in model.backbone.parameters() if p.requires_grad]
    scalars, qk = [], []
    for name, p in model.head.named_parameters():
        if p.requires_grad and name.endswith((".gamma", ".log_scale")):
            scalars.append(p)
        elif p.requires_grad and (".attention.query." in name or ".attention.key." in name):
            qk.append(p)
    taken = {id(p) for p in backbone + scalars + qk}
    head = [p for p in model.parameters() if p.requires_grad and id(p) not in taken]
    attn_mult = cfg.head_lr_mult * cfg.attention_lr_mult
    scalar_group: dict[str, Any] = {"params": scalars, "lr_mult": attn_mult}
    if cfg.attention_weight_decay is not None:
        scalar_group["weight_decay"] = cfg.attention_weight_decay
    groups = [
        {"params": backbone, "lr_mult": 1.0},
        {"params": head, "lr_mult": cfg.head_lr_mult},
        {"params": qk, "lr_mult": attn_mult},
        scalar_group,
    ]
    return [g for g in groups if g["params"]]


def _log(run: Path, row: dict[str, Any]) -> None:
    append_row(run / METRICS_NAME, row)


VAL_SAMPLE = 8
"""Val images a run shorter than ``eval_every`` validates on (evenly spaced over the split)."""


@dataclass
class Run:
    """A training run as :func:`build_run` builds it once: what each step, save and validation
    needs (torchvision's reference keeps the same things in ``main``'s locals)."""

    cfg: TrainConfig
    folder: Path
    model: DANet
    net: nn.Module  # the model, or its DistributedDataParallel wrapper
    criterion: DANetLoss
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    autocast_dtype: torch.dtype | None
    device: torch.device
    loader: DataLoader
    val_set: SegmentationDataset | None
    start: int
    total: int
    world: int
    main: bool
    pam: PamQueriesKeys | None  # the PAM's queries and keys, for the affinity loss
    quiet: bool
    teacher: nn.Module | None = None  # the frozen model distilled from (cfg.teacher)
    bar: Any = None

    @property
    def state_path(self) -> Path:
        return self.folder / TRAIN_STATE_NAME


def train(
    cfg: TrainConfig,
    resume: bool = False,
    changes: dict[str, Any] | None = None,
    quiet: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train DANet with the recipe ``cfg`` (the paper's, with the departures that
    :meth:`TrainConfig.departures` names); returns the final val metrics (rank 0) or {}.

    Progress goes to stderr (a bar on a terminal, a line per 10% elsewhere, see
    :mod:`danet.utils.progress`), with each validation's mIoU on stdout as it is computed; ``quiet``
    drops both.

    With ``resume``, the run in ``cfg.out`` continues with its saved recipe, and ``changes``
    are the values given with ``--resume`` (see :func:`danet.training.resume.resumed_config`). The run
    folder is locked for the life of the run; stale temp files of killed saves are removed.
    Without ``resume``, an ``out`` that holds files (a model folder, an earlier run) is refused
    unless ``overwrite``. SIGINT or SIGTERM stops the run after the current step, saves it and
    raises :class:`TrainingInterrupted`, whose message says how to resume.
    """
    cfg = cfg.validate() if resume else cfg.check_runnable()
    check_backbone(cfg.backbone)
    if cfg.dataset not in DATASETS:
        raise ValueError(f"unknown dataset {cfg.dataset!r}; valid: {', '.join(sorted(DATASETS))}")
    run = Path(cfg.out)
    state_path = run / TRAIN_STATE_NAME
    state = None
    main = int(os.environ.get("RANK", "0")) == 0
    if main and run.exists() and not run.is_dir():
        raise NotADirectoryError(f"--out {run}: is a file; give a folder for the run")
    if main and not resume and not overwrite:
        _check_out(run, overwrite=False)  # before the lock's file is made in a folder it refuses
    with locked(run) if main else nullcontext():
        if main:
            remove_stale_temp_files(run, RUN_FILES)
        if resume:
            state = read_training_state(state_path)
            cfg = resumed_config(state.get("run_config"), changes or {}, state_path)
        elif main:
            if overwrite and cfg.init_weights and Path(cfg.init_weights).resolve() == run.resolve():
                raise RecipeError(
                    "{0} is the {1} folder that overwrite=True would clear; copy the model "
                    "elsewhere, or choose another {1}",
                    "init_weights",
                    "out",
                )
            _check_out(run, overwrite)
        with process_group(cfg.device) as (rank, world, device):
            try:
                with _StopOnSignal() as stop:
                    return _train(cfg, state, run, rank, world, device, quiet, stop)
            except KeyboardInterrupt as err:  # a second signal, or one before the loop
                name = err.args[0] if err.args else "SIGINT"
                if state_path.exists():
                    raise TrainingInterrupted(
                        f"{name}: stopped; the last checkpoint {state_path} is kept; "
                        f"{_resume_hint(run)}"
                    ) from None
                raise TrainingInterrupted(
                    f"{name}: stopped before the first checkpoint; start again with --overwrite"
                ) from None


def _length(cfg: TrainConfig, dataset_size: int, world: int, start: int, folder: Path) -> int:
    """The run's total iterations: ``iters``, or ``epochs`` of the dataset."""
    steps_per_epoch = max(dataset_size // (cfg.batch_size * world), 1)
    total = cfg.iters if cfg.iters is not None else (cfg.epochs or 0) * steps_per_epoch
    if total < start:
        raise RecipeError(
            "{0}/{1}: "
            + f"the run in {folder} already did {start} iterations, more than the {total} asked "
            "for; a resumed run can be extended, not shortened",
            "iters",
            "epochs",
        )
    if cfg.warmup_iters > total and start == 0 and is_main():
        reached = poly_lr(cfg.lr, total - 1, total, cfg.poly_power, cfg.warmup_iters)
        warn(
            f"the run's {total} iterations are shorter than the warm-up ({cfg.warmup_iters} "
            f"iterations): the learning rate peaks at {reached:.2e}, not the recipe's {cfg.lr:.2e}"
        )
    return total


def _validation_set(
    cfg: TrainConfig, total: int, start: int
) -> tuple[SegmentationDataset | None, str | None]:
    """The val split, or for a run shorter than ``eval_every`` :data:`VAL_SAMPLE` images of it
    evenly spaced, and the line that says so (None when the whole split is used)."""
    if not cfg.val_split:
        return None, None
    val_set = build_dataset(cfg.dataset, cfg.data_root, cfg.val_split)
    if not total - start < cfg.eval_every or len(val_set) <= VAL_SAMPLE:
        return val_set, None
    sample = copy.copy(val_set)
    stride = len(val_set) / VAL_SAMPLE
    sample.pairs = [val_set.pairs[int(k * stride)] for k in range(VAL_SAMPLE)]
    note = (
        f"validation: on {VAL_SAMPLE} of the {len(val_set)} '{cfg.val_split}' images, evenly "
        f"spaced, since this run ({total - start} iterations) is shorter than eval_every "
        f"({cfg.eval_every}); danet eval measures the whole split"
    )
    return sample, note


def build_criterion(
    cfg: TrainConfig, dataset: SegmentationDataset, device: torch.device
) -> DANetLoss:
    """The recipe's loss: its term weights, class weighting, pixel sampler, affinity target and
    distillation temperature, on ``device``."""
    class_weights = None
    if cfg.class_weighting == "median_frequency":
        class_weights = torch.from_numpy(median_frequency_weights(dataset)).to(device)
    return DANetLoss(
        cfg.loss_weights,
        ignore_index=255,
        class_weights=class_weights,
        affinity_target=cfg.affinity_target,
        affinity_exclude_radius=cfg.affinity_exclude_radius,
        pixel_sampler=cfg.pixel_sampler,
        ohem_threshold=cfg.ohem_threshold,
        ohem_min_kept=cfg.ohem_min_kept,
        distill_temperature=cfg.distill_temperature,
    ).to(device)


def build_teacher(source: str, model: DANet, device: torch.device) -> nn.Module:
    """The frozen model to distil from (what :func:`danet.load` reads), in eval mode on
    ``device``; its classes must be the student's."""
    teacher = load(source, map_location=device)
    if teacher.num_classes != model.num_classes:
        raise ValueError(
            f"teacher={source!r} predicts {teacher.num_classes} classes, the recipe's model "
            f"{model.num_classes}"
        )
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher.eval()


def _distributed(model: DANet, cfg: TrainConfig, world: int, device: torch.device) -> nn.Module:
    """The model wrapped for torchrun (sync BN on CUDA), or as it is for one process."""
    if world == 1:
        return model
    net: nn.Module = model
    if cfg.sync_bn and device.type == "cuda":  # torch's SyncBatchNorm is CUDA-only
        net = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DistributedDataParallel(
        net, device_ids=[device.index] if device.type == "cuda" else None
    )


def _rare_classes(cfg: TrainConfig, dataset: SegmentationDataset) -> list[int]:
    """The classes that ``rare_crop`` aims at: ``rare_classes`` by name, or those below the
    median frequency of ``dataset``; none when ``rare_crop`` is 0."""
    if cfg.rare_crop == 0:
        return []
    return cfg.rare_class_ids(dataset.class_names) or rare_classes(dataset)


def _loader(
    cfg: TrainConfig, dataset: SegmentationDataset, model: DANet, sampler: StepBatchSampler,
    device: torch.device, rare: list[int],
) -> DataLoader:  # fmt: skip
    transform = train_transform(
        cfg.crop_size, cfg.scale_range, cfg.base_size, cfg.color_jitter, rare, cfg.rare_crop
    )
    return DataLoader(
        # a SegmentationDataset is a map-style dataset (len and getitem), not a torch Dataset
        Augmented(dataset, transform, model.mean, model.std),  # type: ignore[arg-type]
        batch_sampler=sampler,
        num_workers=cfg.workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(cfg.seed),  # leaves the global RNG (dropout) alone
    )


def build_run(
    cfg: TrainConfig,
    state: dict[str, Any] | None,
    folder: Path,
    rank: int,
    world: int,
    device: torch.device,
    quiet: bool = False,
) -> Run:
    """Everything a run needs, built once: data, model (restored from ``state`` when resuming),
    loss, optimiser, schedule length and the val split (or its sample)."""
    torch.manual_seed(cfg.seed)
    dataset = build_dataset(cfg.dataset, cfg.data_root, cfg.train_split)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = build_model(cfg, dataset, pretrained=state is None and cfg.init_weights is None)
    if state is None and cfg.init_weights is not None:
        init_from(model, cfg.init_weights)
    model = model.to(device).to(memory_format=memory_format)
    optimizer = torch.optim.SGD(
        _param_groups(model, cfg), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    autocast_dtype = resolve_precision(cfg.precision, device)
    amp = cfg.amp and device.type == "cuda" and autocast_dtype is None
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    start = 0
    if state is not None:
        start = restore(state, folder / TRAIN_STATE_NAME, model, optimizer, scaler)
    total = _length(cfg, len(dataset), world, start, folder)
    val_set, val_note = _validation_set(cfg, total, start)
    sampler = StepBatchSampler(len(dataset), cfg.batch_size, cfg.seed, start, total, rank, world)
    rare = _rare_classes(cfg, dataset)
    main = is_main()
    if main:
        folder.mkdir(parents=True, exist_ok=True)
        truncate_log(folder, start)
        write_text(folder / RUN_CONFIG_NAME, json.dumps(cfg.to_dict(), indent=2))
        if val_note:  # even with quiet: it qualifies the mIoU the run reports
            print(val_note)
        if cfg.rare_crop > 0 and not quiet:
            names = ", ".join(dataset.class_names[c] for c in rare)
            print(f"rare-class crops (p={cfg.rare_crop:g}) aim at: {names or 'no class'}")
    use_affinity = bool(cfg.loss_weights.get("affinity"))
    pam = PamQueriesKeys(model) if use_affinity else None
    return Run(
        cfg=cfg,
        folder=folder,
        model=model,
        net=_distributed(model, cfg, world, device),
        criterion=build_criterion(cfg, dataset, device),
        optimizer=optimizer,
        scaler=scaler,
        autocast_dtype=torch.float16 if amp else autocast_dtype,
        device=device,
        loader=_loader(cfg, dataset, model, sampler, device, rare),
        val_set=val_set,
        start=start,
        total=total,
        world=world,
        main=main,
        pam=pam if pam is not None and pam.pam is not None else None,
        quiet=quiet,
        teacher=build_teacher(cfg.teacher, model, device) if cfg.teacher else None,
    )


def _gradient_norm(run: Run, loss: torch.Tensor, step: int) -> tuple[list[torch.Tensor], float]:
    """The gradients and their total norm; a non-finite norm (outside float16, whose scaler
    skips the step) stops the run naming the first tensor whose gradient is not finite."""
    named = [(n, p.grad) for n, p in run.model.named_parameters() if p.grad is not None]
    norms = torch.stack([torch.linalg.vector_norm(g) for _, g in named])
    grad_norm = torch.linalg.vector_norm(norms).item()
    if not math.isfinite(grad_norm) and not run.scaler.is_enabled():
        bad = [n for (n, _), v in zip(named, norms.tolist(), strict=True) if not math.isfinite(v)]
        where = (
            f"first non-finite gradient: {bad[0]}, {len(bad)} tensors in all"
            if bad
            else "every tensor's gradient finite, their total beyond float32"
        )
        raise TrainingDiverged(
            f"the gradient norm is {grad_norm} at step {step + 1} (the loss was "
            f"{loss.item():.4f}; {where}); stopped, and the last good checkpoint "
            f"{run.state_path} is kept"
        )
    return [g for _, g in named], grad_norm


def train_step(
    run: Run, images: torch.Tensor, targets: torch.Tensor, step: int
) -> dict[str, float]:
    """One SGD step of the poly schedule on a batch; returns its log row (loss, its parts,
    gradient norm, lr). A non-finite loss or gradient norm raises :class:`TrainingDiverged`."""
    cfg = run.cfg
    lr = poly_lr(cfg.lr, step, run.total, cfg.poly_power, cfg.warmup_iters)
    for group in run.optimizer.param_groups:
        group["lr"] = lr * group["lr_mult"]
    images = images.to(run.device, non_blocking=True)
    targets = targets.to(run.device, non_blocking=True)
    dtype = run.autocast_dtype
    with (
        run.pam if run.pam is not None else contextlib.nullcontext(),
        torch.autocast(run.device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
    ):
        logits = run.net(images)
        pam_qk = run.pam.pop() if run.pam is not None else None
        teacher_logits = None
        if run.teacher is not None:
            with torch.no_grad():
                teacher_logits = run.teacher(images, heads=("out",))["out"]
    loss, parts = run.criterion(logits, targets, pam_qk, cfg.affinity_queries, teacher_logits)
    if not torch.isfinite(loss):
        raise TrainingDiverged(
            f"loss is {loss.item()} at step {step + 1}; stopped, and the last good checkpoint "
            f"{run.state_path} is kept"
        )
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.unscale_(run.optimizer)
    # each tensor's norm before any clipping, so a non-finite total can be traced to them
    grads, grad_norm = _gradient_norm(run, loss, step)
    if cfg.grad_clip_norm is not None:
        clip_to_norm(grads, grad_norm, cfg.grad_clip_norm)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    return {"step": step + 1, "loss": loss.item(), **parts, "grad_norm": grad_norm, "lr": lr}


def save_checkpoint(run: Run, step: int) -> None:
    """Save the training state (resumable) and the model folder, on the main process only."""
    if not run.main:
        return
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    schedule = {"name": "poly", "power": run.cfg.poly_power, "total": run.total}
    save_training_state(
        run.state_path,
        {
            "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "scheduler": schedule,
            "scaler": run.scaler.state_dict(),
            "step": step,
            "rng": rng,
            "config": run.model.config,
            "run_config": run.cfg.to_dict(),
        },
    )
    save_model(run.model, run.folder)


def validate(run: Run, step: int) -> dict[str, Any]:
    """mIoU and the attention figures on the val split (or its sample); logged and plotted."""
    assert run.val_set is not None
    metrics = evaluate(
        run.model,
        run.val_set,
        run.cfg.eval_scales,
        device=run.device,
        progress=not run.quiet,
        diagnostics=True,
        reach_radius=run.cfg.reach_radius,
    )
    if run.main:
        line = (
            f"step {step}/{run.total}  val mIoU {100 * metrics['miou']:.2f}%  "
            f"pixel acc {100 * metrics['pixel_acc']:.2f}%"
        )
        (run.bar.write if run.bar is not None else print)(line)
        row = {"step": step, "val_miou": metrics["miou"], "val_pixel_acc": metrics["pixel_acc"]}
        _log(run.folder, {**row, "val_images": len(run.val_set), **metrics["attention"]})
        plot_curves(run.folder)
    return metrics


def _validation_due(run: Run, done: int) -> bool:
    every = run.cfg.eval_every
    return run.val_set is not None and (done == run.total or bool(every and done % every == 0))


def _killed_validation(run: Run, state: dict[str, Any] | None) -> bool:
    """Whether a resumed run was killed during the validation of the step it resumes at."""
    if state is None or run.val_set is None or run.start == 0:
        return False
    schedule = state.get("scheduler")
    saved_total = schedule.get("total") if isinstance(schedule, dict) else None
    every = run.cfg.eval_every
    due = run.start in (run.total, saved_total) or bool(every and run.start % every == 0)
    return due and not has_row(run.folder / METRICS_NAME, run.start, "val_miou")


def _stopped(run: Run, signal_name: str, done: int, saved: int) -> TrainingInterrupted:
    """Save the steps done since the last checkpoint, and say how to resume."""
    if done > saved:
        save_checkpoint(run, done)
    if run.main and not run.state_path.exists():
        return TrainingInterrupted(
            f"{signal_name} before the first step: nothing saved; start again with --overwrite"
        )
    return TrainingInterrupted(
        f"{signal_name} at step {done} of {run.total}: saved {run.state_path}; "
        f"{_resume_hint(run.folder)}"
    )


def _train(
    cfg: TrainConfig,
    state: dict[str, Any] | None,
    folder: Path,
    rank: int,
    world: int,
    device: torch.device,
    quiet: bool = False,
    stop: _StopOnSignal | None = None,
) -> dict[str, Any]:
    """Build the run, then step, save and validate until its last iteration (or a signal)."""
    stop = stop or _StopOnSignal()
    run = build_run(cfg, state, folder, rank, world, device, quiet)
    run.bar = progress_bar(run.total, "train", initial=run.start, quiet=quiet or not run.main)
    metrics = validate(run, run.start) if _killed_validation(run, state) else {}
    run.net.train()
    tic, done, saved = time.perf_counter(), run.start, run.start
    batches = _until_stopped(without_worker_tracebacks(run.loader), stop)
    for step, (images, targets) in enumerate(batches, run.start):
        row = train_step(run, images, targets, step)
        done = step + 1
        if run.main:
            toc = time.perf_counter()
            row["sec"], tic = toc - tic, toc
            _log(folder, row)
            run.bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{row['lr']:.2e}")
            run.bar.update(1)
        if done % cfg.checkpoint_every == 0 or done == run.total:
            save_checkpoint(run, done)
            saved = done
        if _validation_due(run, done):
            metrics = validate(run, done)
        if done < run.total and stop.requested(world, device):
            break
    run.bar.close()
    if stop.signal is not None and done < run.total:
        raise _stopped(run, stop.signal, done, saved)
    if run.start >= run.total:
        save_checkpoint(run, run.total)
    return metrics if run.main else {}
