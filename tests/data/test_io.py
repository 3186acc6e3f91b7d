"""read_image / read_mask / list_images: conversions that must work and errors that must be clear."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from danet.data.io import DataError, list_images, read_image, read_mask
from danet.model.segment import to_rgb_array

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)


def save(path: Path, image: Image.Image, **kwargs: object) -> Path:
    image.save(path, **kwargs)
    return path


def assert_one_line_naming(err: pytest.ExceptionInfo[DataError], path: Path) -> None:
    message = str(err.value)
    assert str(path) in message
    assert "\n" not in message


def test_rgb_png_round_trips(tmp_path: Path) -> None:
    out = read_image(save(tmp_path / "a.png", Image.fromarray(RGB)))
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, RGB)


def test_rgba_drops_alpha(tmp_path: Path) -> None:
    rgba = np.dstack([RGB, np.full((5, 7), 17, np.uint8)])
    out = read_image(save(tmp_path / "a.png", Image.fromarray(rgba, "RGBA")))
    np.testing.assert_array_equal(out, RGB)


def test_grayscale_is_repeated_over_channels(tmp_path: Path) -> None:
    gray = RGB[:, :, 0]
    out = read_image(save(tmp_path / "a.png", Image.fromarray(gray, "L")))
    assert out.shape == (5, 7, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], gray)


def test_palette_image_is_decoded_to_its_colours(tmp_path: Path) -> None:
    image = Image.fromarray(np.array([[0, 1], [2, 1]], np.uint8), "P")
    image.putpalette([10, 20, 30, 40, 50, 60, 70, 80, 90] + [0] * (256 * 3 - 9))
    out = read_image(save(tmp_path / "a.png", image))
    np.testing.assert_array_equal(out[1, 0], [70, 80, 90])
    np.testing.assert_array_equal(out[0, 1], [40, 50, 60])


def test_16bit_grayscale_keeps_the_high_byte(tmp_path: Path) -> None:
    wide = np.array([[0, 256, 65535], [4660, 32768, 255]], np.uint16)
    path = save(tmp_path / "a.png", Image.fromarray(wide))
    assert Image.open(path).mode.startswith("I;16")
    out = read_image(path)
    np.testing.assert_array_equal(out[:, :, 0], wide >> 8)
    np.testing.assert_array_equal(out[:, :, 2], wide >> 8)


def test_cmyk_jpeg_is_converted(tmp_path: Path) -> None:
    path = save(tmp_path / "a.jpg", Image.new("CMYK", (6, 4), (0, 255, 255, 0)))
    out = read_image(path)
    assert out.shape == (4, 6, 3)
    assert out[..., 0].mean() > 200 and out[..., 1].mean() < 60  # cyan-free, magenta+yellow: red


def test_palette_mask_keeps_indices_not_colours(tmp_path: Path) -> None:
    labels = np.array([[0, 5], [255, 20]], np.uint8)
    image = Image.fromarray(labels, "P")
    image.putpalette(list(range(256)) * 3)
    mask = read_mask(save(tmp_path / "m.png", image))
    assert mask.dtype == np.int64
    np.testing.assert_array_equal(mask, labels)


def test_16bit_mask_keeps_large_values(tmp_path: Path) -> None:
    labels = np.array([[0, 300], [1000, 7]], np.uint16)
    mask = read_mask(save(tmp_path / "m.png", Image.fromarray(labels)))
    np.testing.assert_array_equal(mask, labels)


def test_colour_mask_is_refused(tmp_path: Path) -> None:
    path = save(tmp_path / "m.png", Image.fromarray(RGB))
    with pytest.raises(DataError, match="mode RGB") as err:
        read_mask(path)
    assert_one_line_naming(err, path)


def test_truncated_image_is_a_clear_error(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    for read in (read_image, read_mask):
        with pytest.raises(DataError, match="corrupt or truncated") as err:
            read(path)
        assert_one_line_naming(err, path)


def test_corrupt_jpeg_is_a_clear_error(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(RGB).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    path = tmp_path / "bad.jpg"
    path.write_bytes(bytes(data[:20]) + b"\x00" * 40)
    with pytest.raises(DataError) as err:
        read_image(path)
    assert_one_line_naming(err, path)


def test_file_that_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture\n")
    with pytest.raises(DataError, match="not an image file") as err:
        read_image(path)
    assert_one_line_naming(err, path)


@pytest.mark.parametrize("fmt", ["EPS", "ICO", "TGA"])
def test_formats_outside_the_allowlist_are_refused(tmp_path: Path, fmt: str) -> None:
    path = save(tmp_path / "odd.png", Image.fromarray(RGB), format=fmt)
    with pytest.raises(DataError, match="not an image file") as err:
        read_image(path)
    assert_one_line_naming(err, path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(DataError, match="is a folder, not an image file"):
        read_mask(tmp_path)  # a folder is not a file
    with pytest.raises(DataError, match="folder not found"):
        list_images(tmp_path / "nope")


def test_list_images_filters_and_recurses(tmp_path: Path) -> None:
    (tmp_path / "sub" / ".hidden").mkdir(parents=True)
    for name in ("b.PNG", "a.jpg", "notes.txt", ".c.png", "sub/d.png", "sub/.hidden/e.png"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG"]
    assert [p.name for p in list_images(tmp_path, recursive=True)] == ["a.jpg", "b.PNG", "d.png"]


def test_arrays_of_every_dtype_become_the_same_rgb_as_their_files(tmp_path: Path) -> None:
    """``to_rgb_array`` (numpy/PIL inputs) and ``read_image`` (files) share one conversion."""
    wide = np.array([[0, 256, 65535], [4660, 32768, 255]], np.uint16)
    from_file = read_image(save(tmp_path / "a.png", Image.fromarray(wide)))
    np.testing.assert_array_equal(to_rgb_array(wide), from_file)
    np.testing.assert_array_equal(to_rgb_array(wide.astype(np.int32)), from_file)
    mask = np.array([[True, False], [False, True]])
    from_bits = read_image(save(tmp_path / "b.png", Image.fromarray(mask)))
    np.testing.assert_array_equal(to_rgb_array(mask), from_bits)
    assert to_rgb_array(mask).max() == 255
    floats = np.array([[0.0, 0.5], [1.0, 0.0]], np.float32)
    np.testing.assert_array_equal(to_rgb_array(floats)[:, :, 1], [[0, 128], [255, 0]])
    with pytest.raises(ValueError, match="holds 1 NaN or infinite value"):  # no pixel made up
        to_rgb_array(np.array([[0.0, 0.5], [1.0, np.nan]], np.float32))
    rgba = np.zeros((2, 2, 4), np.uint8) + np.array([1, 2, 3, 4], np.uint8)
    np.testing.assert_array_equal(to_rgb_array(rgba)[0, 0], [1, 2, 3])
    with pytest.raises(ValueError, match="shape"):
        to_rgb_array(np.zeros((2, 2, 2)))


def test_transparent_pixels_are_said_in_one_warning(tmp_path: Path) -> None:
    from danet.data.io import DataWarning, read_image

    rgba = np.zeros((10, 20, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:, :5, 3] = 255  # a quarter opaque, the rest transparent
    path = tmp_path / "cutout.png"
    Image.fromarray(rgba).save(path)
    with pytest.warns(DataWarning, match=r"cutout.png: 75.0% of its pixels are transparent"):
        rgb = read_image(path)
    assert rgb.shape == (10, 20, 3)
    opaque = tmp_path / "opaque.png"
    rgba[..., 3] = 255
    Image.fromarray(rgba).save(opaque)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        read_image(opaque)  # alpha, but nothing transparent: nothing to say
    palette = tmp_path / "palette.png"
    image = Image.new("P", (4, 4), 1)
    image.putpixel((0, 0), 0)
    image.save(palette, transparency=0)  # palette index 0 is transparent: 1 pixel of 16
    with pytest.warns(DataWarning, match="6.2% of its pixels"):
        read_image(palette)


def test_a_fifo_given_as_an_image_is_refused_not_read(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "a.png"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=r"a.png: is a FIFO \(named pipe\), not an image file"):
        read_image(fifo)
