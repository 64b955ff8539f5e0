"""The image-to-video runner's own env vars (README.md, "Environment"), read once when the runner is created.
A bad value fails the load with a message naming the variable."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from runner_sdk.options import RunnerOptions
from runners.text_to_image.encode import DEFAULT_PNG_LEVEL


class ImageToVideoOptions(RunnerOptions):
    """Each field is read from the env var of its upper-cased name (`i2v_max_pixels` <- I2V_MAX_PIXELS).

    Attributes:
        i2v_max_pixels: bound on height x width of the frames (a 400 above it); default 1024 x 1024.
        i2v_max_input_pixels: bound on the input image's pixels, checked from its header.
        i2v_max_steps: bound on num_inference_steps (a 400 above it).
        i2v_decode_chunk_size: frames the VAE decodes at once (upstream's 4): the decode's VRAM peak.
        i2v_warmup_size: (width, height) of the warm-up video from "WxH"; None: 1024x576 on a GPU (the
            route's default), 64x64 on the CPU.
        sfast_warmup: SFAST_WARMUP; with SFAST, two warm-up calls instead of one (contract 9.1).
        i2v_png_level: zlib level of the frames' PNGs. safety_checker_device: the checker's device.
        i2v_compile_mode / i2v_compile_backend: torch.compile's, for the SFAST fallback.
    """

    i2v_max_pixels: int = Field(1024 * 1024, ge=64)
    i2v_max_input_pixels: int = Field(64 * 1024 * 1024, ge=64)
    i2v_max_steps: int = Field(100, ge=1)
    i2v_decode_chunk_size: int = Field(4, ge=1)
    i2v_warmup_size: Annotated[tuple[int, int] | None, NoDecode] = None
    sfast_warmup: bool = True
    i2v_png_level: int = Field(DEFAULT_PNG_LEVEL, ge=0, le=9)
    safety_checker_device: str | None = None
    i2v_compile_mode: str = "default"
    i2v_compile_backend: str = "inductor"

    @field_validator("i2v_warmup_size", mode="before")
    @classmethod
    def _parse_size(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        if not value.strip():
            return None
        width, _, height = value.strip().lower().partition("x")
        return width.strip(), (height or width).strip()

    @field_validator("i2v_warmup_size")
    @classmethod
    def _check_size(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and any(side <= 0 or side % 8 for side in value):
            raise ValueError("width and height must be positive multiples of 8, as in 1024x576")
        return value

    @field_validator("safety_checker_device", mode="before")
    @classmethod
    def _parse_device(cls, value: object) -> object:
        return value if not isinstance(value, str) or value.strip() else None

    def warmup_size(self, device: str) -> tuple[int, int]:
        """(width, height) of the warm-up video: I2V_WARMUP_SIZE, else 1024x576 on a GPU, 64x64 on the CPU."""
        if self.i2v_warmup_size is not None:
            return self.i2v_warmup_size
        return (1024, 576) if device.startswith("cuda") else (64, 64)
