"""Small text files read with bounds: a regular file only, a size limit, UTF-8, and YAML or JSON
parsed with a depth limit and no duplicate keys. Every refusal is a one-line ValueError that
names the file.

A FIFO, a device or a socket is refused before a byte is read (``/dev/zero`` would never end, a
FIFO would block). The one reader of danet's small text files: recipes, JSON files (a model's
config.json, a run's files, ONNX metadata), split lists, classes.txt and a run's log.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from danet.utils.readable import file_kind

MAX_TEXT_BYTES = 64 << 20
"""A danet text file (a split list, classes.txt, a run's log) is far smaller; larger ones are
refused before they are read."""
MAX_JSON_BYTES = 16 << 20
"""A danet JSON file (a model's config.json, a run's config) is far smaller."""
MAX_RECIPE_BYTES = 1 << 20
"""A recipe is a page of YAML; one over a mebibyte is refused before it is parsed."""
MAX_DEPTH = 32
"""How deeply a recipe's or a JSON file's lists and mappings may nest (a recipe uses 2)."""


def read_text_file(path: str | Path, what: str = "text file", limit: int = MAX_TEXT_BYTES) -> str:
    """The text of ``path``: a regular file of at most ``limit`` bytes, UTF-8 without NUL bytes.

    ``what`` names the kind of file in messages ("recipe"); a missing file is a
    FileNotFoundError, anything else wrong a one-line ValueError naming ``path``.
    """
    path = Path(path)
    # O_NONBLOCK: opening a FIFO for reading returns at once, and fstat then refuses it
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = file_kind(info.st_mode)
            raise ValueError(f"{path}: is {kind}; danet reads a {what} only from a regular file")
        if info.st_size > limit:
            raise ValueError(f"{path}: {info.st_size} bytes; a {what} is at most {limit} bytes")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew since fstat
        raise ValueError(f"{path}: more than {limit} bytes; a {what} is at most {limit} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        byte = f"byte {err.start} is {data[err.start]:#04x}"
        raise ValueError(f"{path}: not UTF-8 text ({byte}); expected a {what}") from None
    if "\0" in text:
        raise ValueError(f"{path}: a binary file (a NUL byte at {text.index(chr(0))}); "
                         f"expected a {what}")  # fmt: skip
    return text


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a nesting limit and duplicate keys refused."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(
                    f"nested more than {MAX_DEPTH} levels deep (line {mark.line + 1})"
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                if _hashable(key) and key in seen:
                    raise yaml.YAMLError(
                        f"the key {key!r} is given twice (lines {seen[key]} and {line})"
                    )
                if _hashable(key):
                    seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def parse_yaml(text: str, origin: str) -> Any:
    """``yaml.safe_load(text)`` with at most :data:`MAX_DEPTH` levels and no duplicate key;
    a refusal is a one-line ValueError naming ``origin``."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        lines = str(err).strip().splitlines()
        reason = lines[0] if len(lines) == 1 else " ".join(s.strip() for s in lines[:2])
        raise ValueError(f"{origin}: not a valid recipe ({reason})") from None
    finally:
        loader.dispose()


def read_yaml(path: str | Path, limit: int = MAX_RECIPE_BYTES, what: str = "recipe") -> Any:
    """The data of a small YAML file, read with :func:`read_text_file` and :func:`parse_yaml`."""
    return parse_yaml(read_text_file(path, what, limit), str(path))


def _depth(value: Any) -> int:
    """How deeply ``value``'s lists and dicts nest (iteratively: no recursion to exhaust)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, (dict, list)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in children)
    return deepest


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {key!r} is given twice")
        result[key] = value
    return result


def parse_json(text: str, origin: str, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads(text)`` with no duplicate key and at most ``max_depth`` levels; a refusal is
    a one-line ValueError naming ``origin``."""
    try:
        data = json.loads(text, object_pairs_hook=_unique_pairs)
    except RecursionError:
        raise ValueError(f"{origin}: JSON nested more than {max_depth} levels deep") from None
    except ValueError as err:  # json.JSONDecodeError, or a key given twice
        raise ValueError(f"{origin}: not valid JSON ({err})") from None
    if _depth(data) > max_depth:
        raise ValueError(f"{origin}: JSON nested more than {max_depth} levels deep")
    return data


def read_json(path: str | Path, limit: int = MAX_JSON_BYTES, what: str = "JSON file") -> Any:
    """The data of a small JSON file, bounded as :func:`read_text_file` and :func:`parse_json`."""
    return parse_json(read_text_file(path, what, limit), str(path))
