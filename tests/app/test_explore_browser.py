"""`danet explore` in a real browser: headless Chromium from the system (Debian's ``chromium``;
``.ci/run`` installs it), driven by Playwright, which downloads no browser here."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 60_000  # every wait in the page
START_S = 180  # the server: import torch and gradio, load the model

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason=f"no {CHROMIUM}: apt-get install chromium (.ci/run does)"
)
pytest.importorskip("gradio", reason="the app extra is not installed: pip install 'danet[app]'")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    deadline = time.monotonic() + START_S
    while True:
        if proc.poll() is not None:
            pytest.fail(f"danet explore exited with {proc.returncode}:\n{log.read_text()}")
        try:
            opener.open(url, timeout=5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"danet explore did not answer in {START_S} s:\n{log.read_text()}")
            time.sleep(0.5)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """``danet explore`` on a free port of 127.0.0.1; killed at the end, whatever happens."""
    port = _free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "NO_PROXY": "127.0.0.1"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "danet", "explore", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_until_up(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


NEW_PICTURE = """([selector, before]) => {
    const img = document.querySelector(selector);
    return img !== null && img.src !== before && img.complete && img.naturalWidth > 0;
}"""


def test_click_two_pixels_in_chromium(server: str, tmp_path: Path) -> None:
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=ARGS,
            viewport={"width": 1280, "height": 1400},
            timeout=WAIT_MS,
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(WAIT_MS)
            page.goto(server)
            start = page.locator("#start-0")
            start.wait_for(state="visible")
            assert "pick a sample" in start.inner_text()
            assert not page.locator("#overlay-0").is_visible()  # a hint, not blank panes
            page.screenshot(path=str(tmp_path / "explore_start.png"), full_page=True)
            page.locator("#samples").get_by_text("0016E5_08049").click()
            overlay = page.locator("#overlay-0 img")
            overlay.wait_for(state="visible")
            page.wait_for_function(NEW_PICTURE, arg=["#overlay-0 img", ""])
            heats, before = [], ""
            for fx, fy in ((0.85, 0.62), (0.2, 0.3)):  # a car, then a building
                box = overlay.bounding_box()
                assert box is not None
                page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
                page.wait_for_function(NEW_PICTURE, arg=["#heat-0 img", before])
                before = page.locator("#heat-0 img").get_attribute("src") or ""
                shot = page.locator("#heat-0 img").screenshot()
                heats.append(np.asarray(Image.open(io.BytesIO(shot)).convert("L"), np.float32))
                masses = page.locator("#mass-0 .danet-mass").evaluate_all(
                    "els => els.map(e => parseFloat(e.dataset.mass))"
                )
                assert masses and abs(sum(masses) - 1) < 0.01, masses
                status = page.locator("#status").inner_text()
                assert "answered in" in status and "of the 480x360 image" in status
            assert not start.is_visible()
            page.screenshot(path=str(tmp_path / "explore.png"), full_page=True)
            if os.environ.get("DANET_SCREENSHOTS"):  # where a person wants to look at them
                for name in ("explore_start.png", "explore.png"):
                    shutil.copy(tmp_path / name, Path(os.environ["DANET_SCREENSHOTS"]) / name)
            assert heats[0].shape == heats[1].shape
            changed = np.abs(heats[0] - heats[1]) > 30
            assert changed.mean() > 0.001, "the attention picture did not change between clicks"
        finally:
            browser.close()
