"""``danet train --resume``: which flags a resumed run can honour, and restoring its state.

A resumed run continues with the recipe saved in its checkpoint. Flags that repeat the saved
values are fine; ``--iters``/``--epochs`` may extend the run past the step it reached (the poly
schedule is then recomputed over the new total), and ``--data-root``, ``--device``,
``--workers``, ``--checkpoint-every`` and ``--eval-every`` may change. Any other change is
an error, since the run could not honour it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from danet.model.checkpoint import check_shapes
from danet.training.config import RecipeError, TrainConfig, check_values

CHANGEABLE = ("out", "iters", "epochs", "data_root", "device", "workers", "checkpoint_every",
              "eval_every")  # fmt: skip


def resumed_config(saved: Any, changes: dict[str, Any], origin: str | Path) -> TrainConfig:
    """The saved run config with ``changes`` (flags given with ``--resume``) applied.

    A change that a resumed run cannot honour (another ``lr``, ``crop_size``...) raises a
    :class:`RecipeError` that names the field and both values.
    """
    if not isinstance(saved, dict):
        raise ValueError(f"{origin}: its run_config is not a mapping")
    cfg = TrainConfig().merge(saved, origin=str(origin))
    changes = check_values(changes)
    for name, value in changes.items():
        if name not in CHANGEABLE and value != getattr(cfg, name, value):
            saved_value = repr(getattr(cfg, name)).replace("{", "{{").replace("}", "}}")
            given = repr(value).replace("{", "{{").replace("}", "}}")
            places = ", ".join(f"{{{k}}}" for k in range(1, len(CHANGEABLE)))
            raise RecipeError(
                f"{{0}} {given}: a resumed run continues with its saved value {saved_value} and "
                f"cannot change it (changeable: {places})",
                name,
                *CHANGEABLE[1:],
            )
    updates = {k: v for k, v in changes.items() if k in CHANGEABLE}
    if "iters" in updates and updates["iters"] is not None and "epochs" not in updates:
        updates["epochs"] = None
    elif updates.get("epochs") is not None and "iters" not in updates:
        updates["iters"] = None
    return cfg.merge(updates)


def restore(
    state: dict[str, Any],
    origin: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
) -> int:
    """Load a training checkpoint (``state`` from ``read_training_state``) into the model,
    optimizer, scaler and RNG; return its step.

    A checkpoint that does not fit (tampered, or from another recipe) is a ValueError that names
    ``origin`` and the part that is wrong.
    """
    for key in ("optimizer", "step", "rng"):
        if key not in state:
            raise ValueError(f"{origin}: not a resumable training checkpoint (no {key!r})")
    step = state["step"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"{origin}: its step {step!r} is not a count of iterations")
    weights = state["model"]  # a dict of tensors: read_training_state checked it
    check_shapes(model.state_dict(), {k: v.shape for k, v in weights.items()}, origin)
    model.load_state_dict(weights)
    parts = (
        ("optimizer", lambda: optimizer.load_state_dict(state["optimizer"])),
        ("rng", lambda: torch.set_rng_state(state["rng"]["torch"])),
        ("scaler", lambda: scaler.load_state_dict(state["scaler"]) if "scaler" in state else None),
    )
    for name, load in parts:
        try:
            load()
        except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as err:
            lines = str(err).strip().splitlines()
            reason = lines[0] if lines else type(err).__name__
            raise ValueError(
                f"{origin}: its {name} state does not fit this run ({reason})"
            ) from None
    if torch.cuda.is_available() and isinstance(state["rng"], dict) and "cuda" in state["rng"]:
        torch.cuda.set_rng_state(state["rng"]["cuda"])
    return step
