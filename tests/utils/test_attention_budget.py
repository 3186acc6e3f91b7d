"""The memory an exported graph's position attention holds, and the pixel budget's check of it."""

from __future__ import annotations

import pytest

from danet.utils.attention_budget import attention_bytes, check_attention_budget


def test_attention_bytes_naive_grows_with_n_squared() -> None:
    n = 21600  # a 360x3840 panorama at output stride 8
    assert attention_bytes(n, "naive") == 2 * n * n * 4
    assert attention_bytes(n, "linear") == 2 * 256 * n * 4
    assert attention_bytes(100, "linear") == attention_bytes(100, "naive")  # one block
    with pytest.raises(ValueError, match="form"):
        attention_bytes(n, "quadratic")  # type: ignore[arg-type]


def test_budget_refuses_naive_form_that_would_not_fit() -> None:
    budget = 4096 * 4096
    check_attention_budget(360, 3840, 8, "linear", budget)  # linear: within the pixel budget
    check_attention_budget(360, 480, 8, "naive", budget)  # small enough to build N x N
    with pytest.raises(ValueError) as caught:
        check_attention_budget(360, 3840, 8, "naive", budget, "pano.png")
    message = str(caught.value)
    assert "\n" not in message
    for needle in ("pano.png", "3840x360", "naive", "N = 21600", "3.5 GiB", str(budget)):
        assert needle in message
    with pytest.raises(ValueError):  # a smaller budget refuses a smaller image
        check_attention_budget(360, 960, 8, "naive", 512 * 1024)
