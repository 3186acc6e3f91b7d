"""A model's metadata (class names, palette, input size), checked without torch: config.json and
an ONNX file's metadata go through the same :func:`check_metadata`."""

from __future__ import annotations

from typing import Any

from danet.utils.bounds import MAX_CLASS_NAME, check_input_size, short


def _is_rgb(color: Any) -> bool:
    return (
        isinstance(color, (list, tuple))
        and len(color) == 3
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in color)
    )


def check_metadata(config: dict[str, Any], num_classes: int, origin: str) -> None:
    """Check a model's class names, palette and input size (from config.json or an ONNX file's
    metadata) against its ``num_classes``; a bad one is a ValueError naming ``origin``."""
    names = config.get("class_names")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{origin}: class_names must be a list of strings, not {short(names)}")
        if len(names) != num_classes:
            raise ValueError(f"{origin}: {len(names)} class_names for {num_classes} classes")
        for index, name in enumerate(names):
            if len(name) > MAX_CLASS_NAME:
                raise ValueError(
                    f"{origin}: class name {index} is {len(name)} characters long "
                    f"({short(name, 40)}); at most {MAX_CLASS_NAME}"
                )
    palette = config.get("palette")
    if palette is not None:
        bad = [c for c in palette if not _is_rgb(c)] if isinstance(palette, list) else [palette]
        if bad:
            raise ValueError(
                f"{origin}: palette must be [R, G, B] colours of integers 0-255, not "
                f"{short(bad[0])}"
            )
        if len(palette) != num_classes:
            raise ValueError(f"{origin}: {len(palette)} palette colours for {num_classes} classes")
    if config.get("input_size") is not None:
        check_input_size(config["input_size"], f"{origin}: input_size")
