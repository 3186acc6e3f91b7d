"""``danet explore``: a local web page where a click on a pixel shows where it attends.

Gradio is an optional extra (``pip install 'danet[app]'``): ``danet.app.explorer`` (the
computation) and ``danet.app.render`` (the pictures) do not need it, ``danet.app.ui`` does.
"""

from __future__ import annotations

import importlib.util

INSTALL_HINT = "pip install 'danet[app]'"


def require_gradio() -> None:
    """Raise a one-line ``RuntimeError`` naming the pip command when Gradio is not installed."""
    try:
        found = importlib.util.find_spec("gradio") is not None
    except (ImportError, ValueError):  # a broken or stubbed-out gradio module
        found = False
    if not found:
        raise RuntimeError(f"the explorer needs Gradio, which is not installed: {INSTALL_HINT}")
