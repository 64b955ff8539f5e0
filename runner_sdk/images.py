"""Input images for the image routes (runner-contract-more-pipelines 6.2): decoded by content with Pillow,
EXIF orientation applied, converted to RGB, and bounded in pixels *before* the pixels are decoded.

Every failure is a `RunnerError` with a status the routes list (never upstream's plain-text 500, Q32):
400 for bytes that are not an image Pillow can read, and 400 for an image over the pixel bound (a
decompression bomb is refused from its header, before any allocation).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from .errors import RunnerError

# Upstream's effective bound is Pillow's decompression-bomb guard (about 179 Mpx raises). Ours is smaller
# and explicit: 64 Mpx is 8192 x 8192, far beyond what any of these models takes in.
DEFAULT_MAX_PIXELS = 64 * 1024 * 1024
UNDECODABLE = "Unsupported or malformed image."
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")


def open_image(path: Path | str, max_pixels: int = DEFAULT_MAX_PIXELS, formats: tuple[str, ...] = FORMATS):
    """The image at `path` as an RGB `PIL.Image.Image` (the first frame of an animation), upright.

    Args:
        path: the uploaded file (e.g. `request.image.path`).
        max_pixels: the largest width x height accepted, checked from the header before decoding.
        formats: Pillow format names to try; the format is read from the bytes, never the file name.
    Returns:
        An RGB image, EXIF orientation applied (so width and height are as displayed).
    Raises:
        RunnerError: 400 "Unsupported or malformed image." when Pillow cannot identify or decode it;
            400 naming the size and the bound when it has more than `max_pixels` pixels.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path, formats=list(formats))
            width, height = image.size  # from the header: nothing decoded yet
            if width * height > max_pixels:
                raise RunnerError(400, f"Image of {width}x{height} = {width * height} pixels is over this runner's "
                                       f"limit of {max_pixels} pixels.")
            image.seek(0)
            image.load()
    except RunnerError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard fired in the header read (an image far over any sane size).
        raise RunnerError(400, f"Image is over this runner's limit of {max_pixels} pixels: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise RunnerError(400, UNDECODABLE) from None
    upright = ImageOps.exif_transpose(image)
    return upright.convert("RGB")


def image_size(path: Path | str) -> tuple[int, int]:
    """(width, height) from the header alone, as go-livepeer's `image.DecodeConfig` bills it (no EXIF turn).

    Raises:
        RunnerError: 400 when the bytes are not an image Pillow can identify.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise RunnerError(400, UNDECODABLE) from None
