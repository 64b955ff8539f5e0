"""The upscale runner's own env vars (README.md, "Environment"), read once when the runner is created. A bad
value fails the load with a message naming the variable."""

from __future__ import annotations

from pydantic import Field, field_validator

from runner_sdk.options import RunnerOptions
from runners.text_to_image.encode import DEFAULT_PNG_LEVEL

# 1024 x 1024 input = 4096 x 4096 output (16.8 Mpx, a 50 MB PNG at worst): the documented output bound is
# 16 x UPSCALE_MAX_INPUT_PIXELS.
DEFAULT_MAX_INPUT_PIXELS = 1024 * 1024


class UpscaleOptions(RunnerOptions):
    """Each field is read from the env var of its upper-cased name (`upscale_tile_size` <- UPSCALE_TILE_SIZE).

    Attributes:
        upscale_max_input_pixels: bound on the input's width x height (a 400 above it); the output has 16x.
        upscale_tile_size: inputs wider or taller than this many pixels are upscaled in tiles of this side,
            so memory is bounded by the tile, not the image (the x4 upscaler was trained on 128-pixel crops).
        upscale_tile_overlap: pixels (of the input) neighbouring tiles share, blended linearly.
        upscale_noise_level: the noise added to the low-resolution input (upstream's fixed 20).
        upscale_guidance_scale: classifier-free guidance (upstream's fixed 9.0).
        upscale_max_steps: bound on num_inference_steps (a 400 above it).
        upscale_warmup_size: the warm-up input's side in pixels; 0 skips the warm-up.
        upscale_png_level: zlib level of the output PNG. safety_checker_device: the checker's device.
        upscale_compile_mode / upscale_compile_backend: torch.compile's, for the SFAST fallback.
    """

    upscale_max_input_pixels: int = Field(DEFAULT_MAX_INPUT_PIXELS, ge=64)
    upscale_tile_size: int = Field(256, ge=32)
    upscale_tile_overlap: int = Field(32, ge=0)
    upscale_noise_level: int = Field(20, ge=0, le=350)
    upscale_guidance_scale: float = Field(9.0, ge=0.0)
    upscale_max_steps: int = Field(200, ge=1)
    upscale_warmup_size: int = Field(128, ge=0)
    upscale_png_level: int = Field(DEFAULT_PNG_LEVEL, ge=0, le=9)
    safety_checker_device: str | None = None
    upscale_compile_mode: str = "default"
    upscale_compile_backend: str = "inductor"

    @field_validator("upscale_tile_size")
    @classmethod
    def _tile_multiple_of_4(cls, value: int) -> int:
        if value % 4:
            raise ValueError("must be a multiple of 4 (the upscaler works on 4-pixel blocks)")
        return value

    @field_validator("upscale_tile_overlap")
    @classmethod
    def _overlap(cls, value: int, info) -> int:
        tile = info.data.get("upscale_tile_size", 256)
        if value * 2 >= tile:
            raise ValueError(f"must be less than half of UPSCALE_TILE_SIZE ({tile})")
        return value

    @field_validator("safety_checker_device", mode="before")
    @classmethod
    def _parse_device(cls, value: object) -> object:
        return value if not isinstance(value, str) or value.strip() else None
