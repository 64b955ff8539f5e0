"""Input images (contract 6.2): real files made here in each format, decoded by content, upright, RGB,
bounded from the header before decoding; every bad input a 400 RunnerError."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from runner_sdk.errors import RunnerError
from runner_sdk.images import UNDECODABLE, image_size, open_image


def _pixels(w: int = 12, h: int = 8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
def test_each_format_is_read_by_content_whatever_the_name(tmp_path, fmt):
    path = tmp_path / "image"  # no extension, as go-livepeer names the part
    Image.fromarray(_pixels()).save(path, format=fmt)
    image = open_image(path)
    assert image.mode == "RGB" and image.size == (12, 8)


def test_alpha_palette_and_grey_become_rgb(tmp_path):
    for mode in ("RGBA", "P", "L", "LA"):
        path = tmp_path / mode
        Image.new(mode, (5, 4)).save(path, format="PNG")
        assert open_image(path).mode == "RGB"


def test_gif_gives_its_first_frame(tmp_path):
    frames = [Image.new("RGB", (6, 6), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim"
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:])
    r, g, b = open_image(path).getpixel((3, 3))
    assert r > 200 and b < 50


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "photo"
    Image.fromarray(_pixels(12, 8)).save(path, format="JPEG", exif=exif)
    assert open_image(path).size == (8, 12)
    assert image_size(path) == (12, 8)  # what go-livepeer bills: the stored size


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"GIF89a"])
def test_undecodable_bytes_are_a_400(tmp_path, data):
    path = tmp_path / "bad"
    path.write_bytes(data)
    with pytest.raises(RunnerError) as err:
        open_image(path)
    assert err.value.status == 400 and err.value.msg == UNDECODABLE


def test_truncated_png_is_a_400(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(_pixels(64, 64)).save(buf, format="PNG")
    path = tmp_path / "cut"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(RunnerError) as err:
        open_image(path)
    assert err.value.status == 400


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path):
    """A 100 KB file that claims 60000 x 60000 pixels (10.8 GB as RGB): refused before any decode."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 100_000)
    path = tmp_path / "bomb"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    with pytest.raises(RunnerError) as err:
        open_image(path)
    assert err.value.status == 400 and "3600000000 pixels" in err.value.msg and "limit" in err.value.msg
    small = tmp_path / "ok"
    Image.fromarray(_pixels(40, 30)).save(small, format="PNG")
    with pytest.raises(RunnerError, match="limit of 1000 pixels"):
        open_image(small, max_pixels=1000)
