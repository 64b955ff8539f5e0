"""Tiled upscaling: an input larger than the tile is cut into overlapping tiles, each upscaled on its own,
and the 4x results blended with linear ramps across the overlaps, so device memory is bounded by the tile
size whatever the input (upstream runs the whole image at once and runs out of memory: contract 8.6)."""

from __future__ import annotations

import numpy as np

SCALE = 4


def starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile origins along one axis covering [0, length) with tiles of `tile` sharing >= `overlap` pixels.

    Returns:
        [0] when the axis fits one tile; otherwise evenly spread origins, the last at `length - tile`.
    """
    if length <= tile:
        return [0]
    stride = tile - overlap
    count = -(-(length - overlap) // stride)  # ceil
    last = length - tile
    return sorted({round(i * last / (count - 1)) for i in range(count)})


def boxes(width: int, height: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(left, top, right, bottom) input boxes of every tile, row by row."""
    return [(x, y, min(x + tile, width), min(y + tile, height))
            for y in starts(height, tile, overlap) for x in starts(width, tile, overlap)]


def ramp(length: int, overlap: int) -> np.ndarray:
    """A blending weight along one tile axis: rising over `overlap` at each edge, 1 in the middle."""
    weight = np.ones(length, dtype=np.float32)
    if overlap > 0:
        edge = (np.arange(overlap, dtype=np.float32) + 1) / (overlap + 1)
        weight[:overlap] = np.minimum(weight[:overlap], edge)
        weight[length - overlap:] = np.minimum(weight[length - overlap:], edge[::-1])
    return weight


class Blender:
    """Accumulates upscaled tiles (floats, 0..1) into the output with ramp weights; `result()` is uint8."""

    def __init__(self, width: int, height: int, overlap: int):
        self.overlap = overlap * SCALE
        self.sum = np.zeros((height * SCALE, width * SCALE, 3), dtype=np.float32)
        self.weight = np.zeros((height * SCALE, width * SCALE, 1), dtype=np.float32)

    def add(self, box: tuple[int, int, int, int], pixels: np.ndarray) -> None:
        """Add one tile's output ((4h, 4w, 3) floats) at its input `box`."""
        left, top = box[0] * SCALE, box[1] * SCALE
        h, w = pixels.shape[:2]
        weight = np.outer(ramp(h, self.overlap), ramp(w, self.overlap))[:, :, None]
        self.sum[top:top + h, left:left + w] += pixels * weight
        self.weight[top:top + h, left:left + w] += weight

    def result(self) -> np.ndarray:
        """(4H, 4W, 3) uint8."""
        return (self.sum / np.maximum(self.weight, 1e-8) * 255).round().clip(0, 255).astype(np.uint8)
