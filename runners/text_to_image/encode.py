"""Image -> data URL (contract 6: RFC 2397, padded base64, PNG for parity; JPEG as an option).

PNG encoding of a 1024x1024 image sits on every request's critical path. Pillow's default (zlib level 6,
default strategy) spends most of its time searching for deflate matches, which buy little on photographic
pixels after PNG's row filters. zlib's run-length strategy (Z_RLE) skips that search: about 2-3x faster
with files as small as the default (benchmarks/results/text_to_image/cpu-png.md). Still Pillow, still a
standard PNG. It runs in the job thread, never on the event loop.
"""

from __future__ import annotations

import base64
import io
import zlib

import numpy as np
from PIL import Image

DEFAULT_PNG_LEVEL = 1


def encode_png(pixels: np.ndarray, compress_level: int = DEFAULT_PNG_LEVEL, strategy: int = zlib.Z_RLE) -> bytes:
    """A standard PNG file of `pixels`.

    Args:
        pixels: (H, W, 3) uint8 RGB. compress_level: zlib level 0-9 (T2I_PNG_LEVEL).
        strategy: zlib strategy; Z_RLE by default (see the module docstring).
    Returns:
        The PNG file's bytes.
    """
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=compress_level, compress_type=strategy)
    return buf.getvalue()


def encode_jpeg(pixels: np.ndarray, quality: int = 90) -> bytes:
    """A JPEG file of `pixels`: (H, W, 3) uint8 RGB, at Pillow's `quality` 1-100 (T2I_JPEG_QUALITY)."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def data_url(pixels: np.ndarray, fmt: str = "png", png_level: int = DEFAULT_PNG_LEVEL, jpeg_quality: int = 90) -> str:
    """An RFC 2397 data URL of one image (contract 6: padded base64).

    Args:
        pixels: (H, W, 3) uint8 RGB. fmt: "png" (parity) or "jpeg" (T2I_IMAGE_FORMAT).
        png_level, jpeg_quality: as `encode_png` and `encode_jpeg`.
    Returns:
        "data:image/png;base64,..." or "data:image/jpeg;base64,...".
    """
    if fmt == "jpeg":
        return "data:image/jpeg;base64," + base64.b64encode(encode_jpeg(pixels, jpeg_quality)).decode("ascii")
    return "data:image/png;base64," + base64.b64encode(encode_png(pixels, png_level)).decode("ascii")
