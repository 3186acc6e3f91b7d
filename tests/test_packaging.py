"""pyproject.toml declares ranges; constraints.txt and constraints-lowest.txt pin inside them."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

tomllib = pytest.importorskip("tomllib")
ROOT = Path(__file__).resolve().parents[1]
if not (ROOT / "pyproject.toml").is_file():
    pytest.skip("not run from a source tree", allow_module_level=True)
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def pins(name: str) -> dict[str, str]:
    lines = (ROOT / name).read_text().splitlines()
    pairs = [line.split("==") for line in lines if "==" in line and not line.startswith("#")]
    return {canonicalize_name(k): v.strip() for k, v in pairs}


def requirements() -> list[Requirement]:
    return [Requirement(r) for r in PROJECT["project"]["dependencies"]]


def test_dependencies_are_ranges_not_pins() -> None:
    for req in requirements():
        operators = {spec.operator for spec in req.specifier}
        assert operators == {">=", "<"}, f"{req}: want a compatible range >=low,<high"


@pytest.mark.parametrize("name", ["constraints.txt", "constraints-lowest.txt"])
def test_constraints_pin_every_dependency_inside_its_range(name: str) -> None:
    pinned = pins(name)
    for req in requirements():
        version = pinned.get(canonicalize_name(req.name))
        assert version is not None, f"{name} does not pin {req.name}"
        assert req.specifier.contains(version, prereleases=True), f"{name}: {req.name}=={version}"


def test_lowest_constraints_are_the_lower_bounds() -> None:
    pinned = pins("constraints-lowest.txt")
    for req in requirements():
        low = next(s.version for s in req.specifier if s.operator == ">=")
        assert pinned[canonicalize_name(req.name)] == low, req.name


def test_license_is_an_spdx_string_and_package_data_ships() -> None:
    assert PROJECT["project"]["license"] == "MIT"
    assert any(r.startswith("setuptools>=77") for r in PROJECT["build-system"]["requires"])
    data = PROJECT["tool"]["setuptools"]["package-data"]["danet"]
    assert "py.typed" in data and "configs/*.yaml" in data
    package = ROOT / "src" / "danet"
    assert (package / "py.typed").is_file() and list((package / "configs").glob("*.yaml"))
