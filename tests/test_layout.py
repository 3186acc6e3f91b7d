"""The package's shape: no import circles, and a command line that starts without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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
