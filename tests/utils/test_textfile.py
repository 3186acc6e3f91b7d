"""Small text files are read bounded and strict: regular files only, size and depth limits,
UTF-8, and no key given twice."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from danet.utils.textfile import MAX_DEPTH, parse_json, parse_yaml, read_json, read_yaml


def test_a_key_given_twice_is_refused_naming_it_and_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("iters: 5\nlr: 0.1\niters: 50\n")
    with pytest.raises(
        ValueError, match=r"r.yaml: .*the key 'iters' is given twice \(lines 1 and 3\)"
    ):
        read_yaml(path)
    with pytest.raises(ValueError, match="given twice"):
        parse_yaml("a: {b: 1, b: 2}\n", "x")
    with pytest.raises(ValueError, match="'iters' is given twice"):
        parse_json('{"iters": 1, "iters": 2}', "x.json")


def test_deep_nesting_is_refused_without_recursion_error() -> None:
    deep = "a: " + "[" * 100_000 + "]" * 100_000 + "\n"
    with pytest.raises(ValueError, match=f"nested more than {MAX_DEPTH} levels"):
        parse_yaml(deep, "deep.yaml")
    block = "".join("  " * k + f"k{k}:\n" for k in range(200)) + "  " * 200 + "v: 1\n"
    with pytest.raises(ValueError, match="nested more than"):
        parse_yaml(block, "deep.yaml")
    with pytest.raises(ValueError, match="nested more than"):
        parse_json("[" * 100_000 + "]" * 100_000, "deep.json")
    with pytest.raises(ValueError, match="nested more than"):
        parse_json("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "deep.json")
    assert parse_yaml("a: [[1]]\n", "ok.yaml") == {"a": [[1]]}


def test_a_large_or_binary_file_is_one_line_naming_it(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("a: 1\n" + "#" * (2 << 20))
    with pytest.raises(ValueError, match=r"big.yaml: \d+ bytes; a recipe is at most"):
        read_yaml(big)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(
        ValueError, match=r"bin.yaml: not UTF-8 text \(byte 0 is 0x89\); expected a recipe"
    ):
        read_yaml(binary)
    nul = tmp_path / "nul.json"
    nul.write_bytes(b'{"a": 1}\x00')
    with pytest.raises(
        ValueError, match=r"nul.json: a binary file \(a NUL byte at 8\); expected a JSON file"
    ):
        read_json(nul)


def test_a_fifo_or_device_is_refused_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "recipe.yaml"
    os.mkfifo(fifo)
    reader = threading.Thread(
        target=lambda: pytest.raises(ValueError, read_yaml, fifo), daemon=True
    )
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "reading a FIFO blocked"
    with pytest.raises(
        ValueError, match=r"recipe.yaml: is a FIFO \(named pipe\); danet reads a recipe only"
    ):
        read_yaml(fifo)
    with pytest.raises(ValueError, match=r"/dev/zero: is a character device"):
        read_yaml("/dev/zero")
    with pytest.raises(ValueError, match="a folder"):
        read_json(tmp_path)
