"""The package's shape: imports only go down the floors, no import circles, and a command line
and an ONNX path that start without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import danet

PACKAGE = Path(danet.__file__).resolve().parent
SRC = PACKAGE.parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the danet modules it imports, anywhere in its code (functions included)."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                    base = f"{base}.{node.module}" if node.module else base
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            else:
                continue
            for target in targets:
                while target and target not in files:  # danet.x.y -> danet.x if y is a name
                    target = target.rpartition(".")[0]
                if target and target != name and target != "danet":
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` as a list of nodes, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_imports_itself_through_others() -> None:
    graph = import_graph()
    assert "danet.model.danet" in graph and "danet.cli" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_no_circles_between_the_packages() -> None:
    """danet.model, danet.training, danet.deploy, ...: each depends on the others one way only."""
    role = {}  # module -> its top-level part of danet (danet.model, danet.cli, ...)
    graph = import_graph()
    for name in graph:
        role[name] = ".".join(name.split(".")[:2])
    roles: dict[str, set[str]] = {}
    for name, edges in graph.items():
        roles.setdefault(role[name], set()).update(role[e] for e in edges if role[e] != role[name])
    assert find_cycle(roles) is None, " -> ".join(find_cycle(roles) or [])


def test_the_parser_builds_without_torch() -> None:
    code = (
        "import sys, danet.cli; danet.cli.build_parser(); "
        "print(sorted(m for m in ('torch', 'timm', 'cv2', 'albumentations') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


GROUND = {"danet.utils", "danet.options", "danet.assets", "danet.version"}
BASE = {"danet.model", "danet.data", *GROUND}
# the demo and the explorer open a model once and use every floor below
OPENS_MODELS = {
    "danet.loading",
    "danet.inference",
    "danet.deploy",
    "danet.training",
    "danet.analysis",
    "danet.convert",
    *BASE,
}
ALLOWED: dict[str, set[str]] = {
    # top: open a model once, pass it down
    "danet": {"*"},  # the root's lazy public names
    "danet.__main__": {"danet.cli"},
    "danet.cli": {"*"},  # the package: arguments, parser, commands, errors, entry, ...
    "danet.launch": {"danet.cli"},  # python -m danet.launch: the command's names, its ranks
    "danet.demo": OPENS_MODELS,
    "danet.app": OPENS_MODELS,
    "danet.loading": {"danet.deploy", *BASE},
    # files, export, int8, the onnxruntime stand-in
    "danet.inference": {"danet.analysis", "danet.convert", *BASE},
    "danet.deploy": {"danet.analysis", "danet.convert", *BASE},
    # train and evaluate: take a model; no onnxruntime
    "danet.training": {"danet.analysis", "danet.convert", *BASE},
    "danet.analysis": BASE,
    "danet.convert": BASE,
    # tensors in, tensors out; no image files
    "danet.model": GROUND,
    "danet.data": GROUND,
    **{ground: GROUND for ground in GROUND},
}
"""Which parts of the package each part may import (import-linter's "layers" contract, written
out): imports go down the floors of /work/shared/STYLE.md, and ``model`` and ``data`` stand
side by side, neither importing the other."""


def part(module: str) -> str:
    """The part of the package a module belongs to: ``danet.model``, ``danet.cli``, ..."""
    return ".".join(module.split(".")[:2])


def forbidden_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import of another part of the package that :data:`ALLOWED` does not list."""
    bad = []
    for name, edges in sorted(graph.items()):
        allowed = ALLOWED.get(part(name))
        assert allowed is not None, f"{name}: add {part(name)} to ALLOWED"
        for target in sorted(edges):
            if part(target) != part(name) and "*" not in allowed and part(target) not in allowed:
                bad.append(f"{name} -> {target}")
    return bad


def test_imports_only_go_down_the_floors() -> None:
    assert forbidden_imports(import_graph()) == []


def test_the_floor_rule_catches_an_upward_import() -> None:
    graph = {"danet.model.danet": {"danet.data.io"}, "danet.data.io": {"danet.utils.atomic"}}
    assert forbidden_imports(graph) == ["danet.model.danet -> danet.data.io"]
    assert forbidden_imports({"danet.training.evaluate": {"danet.deploy.backend"}}) == [
        "danet.training.evaluate -> danet.deploy.backend"
    ]


def test_no_module_below_the_top_imports_the_package_root() -> None:
    """``from danet import __version__`` in a lower module would load the root and its lazy
    names; ``danet.version`` holds the version."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if part(name) in ("danet", "danet.cli", "danet.demo", "danet.app", "danet.loading"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "danet" and not node.level:
                offenders += [f"{name}: from danet import {a.name}" for a in node.names]
            if isinstance(node, ast.Import) and any(a.name == "danet" for a in node.names):
                offenders.append(f"{name}: import danet")
    assert offenders == []


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("danet.training.loop", "onnxruntime"),
        ("danet.training.evaluate", "onnxruntime"),
        ("danet.deploy.onnx_runtime", "torch"),
        ("danet.training.evaluate", "torch"),
        ("danet.inference.files", "torch"),
        ("danet.model.metadata", "torch"),
        ("danet.model.paths", "torch"),
    ],
)
def test_what_a_module_does_not_load(module: str, absent: str) -> None:
    code = f"import sys, {module}; print({absent!r} in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["--version"],
        ["--help"],
        ["predict", "/no/such/photo.jpg"],
        ["predict", "photo.jpg", "--scales", "0"],
        ["eval", "--checkpoint", "m.onnx", "--device", "cuda"],
    ],
)
def test_argument_errors_and_help_load_no_torch(argv: list[str]) -> None:
    """--version, --help and an error in the arguments are said before torch would load (the
    default checkpoint is a PyTorch one)."""
    code = (
        "import sys\nfrom danet.cli import main\ntry:\n    main(sys.argv[1:])\n"
        "except SystemExit:\n    pass\nprint('torch' in sys.modules, 'timm' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *argv], env={"PYTHONPATH": str(SRC)}, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    assert out.stdout.strip().splitlines()[-1] == "False False", out.stdout + out.stderr


MAX_FUNCTION_LINES = 80


def test_every_function_fits_on_a_screen() -> None:
    """No function or method in the package is longer than MAX_FUNCTION_LINES lines."""
    package = Path(danet.__file__).resolve().parent
    long = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(package)}:{node.name} ({lines} lines)")
    assert not long, long
