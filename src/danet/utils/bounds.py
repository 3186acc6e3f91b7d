"""The bounds on what input can steer: sizes, seeds, class names (docs/usage.md lists them).

Imports nothing heavy, so the ``danet`` command checks its flags with it before torch loads.
"""

from __future__ import annotations

MIN_INPUT_SIDE = 32
"""The smallest side of an ``input_size`` (the backbone's stride-8 features are then 4x4)."""
MAX_SIZE_PIXELS = 4096 * 4096
"""The most pixels an ``input_size``, ``crop_size`` or ``base_size`` may have (as --max-pixels)."""
MAX_SEED = 2**32 - 1
"""The largest ``--seed`` (numpy's and the data order's seeds are derived from it)."""
MAX_CLASS_NAME = 200
"""The longest class name danet takes (characters), from a classes.txt or a model's metadata."""
INPUT_SIZE_RULE = (
    f"H,W (or N): two integers >= {MIN_INPUT_SIDE}, at most {MAX_SIZE_PIXELS} pixels in all"
)


def input_size_ok(value: object) -> bool:
    """Whether ``value`` is an [H, W] of integers within :data:`INPUT_SIZE_RULE`."""
    return (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and min(value) >= MIN_INPUT_SIDE
        and value[0] * value[1] <= MAX_SIZE_PIXELS
    )


def check_input_size(value: object, label: str) -> list[int]:
    """``value`` as [H, W], or a ValueError naming ``label`` that says what is accepted."""
    if not input_size_ok(value):
        raise ValueError(f"{label} must be {INPUT_SIZE_RULE}, not {short(value)}")
    return [int(v) for v in value]  # type: ignore[union-attr]


def short(value: object, limit: int = 200) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages about untrusted values."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text)} characters)"
