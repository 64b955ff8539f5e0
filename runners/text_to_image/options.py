"""The text-to-image runner's own env vars (README.md, "Environment"), read once by the SDK when the runner is
created (`TextToImageRunner.options`). A bad value fails the load with a message naming the variable, e.g.
`T2I_MAX_PIXELS='abc': Input should be a valid integer`, so /health says ERROR with that reason."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from runner_sdk.options import RunnerOptions

from .encode import DEFAULT_PNG_LEVEL

DEFAULT_MAX_PIXELS = 8 * 1024 * 1024  # e.g. 8 images of 1024x1024, or 2 of 2048x2048
FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg"}


class TextToImageOptions(RunnerOptions):
    """Each field is read from the env var of its upper-cased name (`t2i_max_pixels` <- T2I_MAX_PIXELS).

    Attributes:
        t2i_max_pixels: bound on width x height x num_images_per_prompt, in pixels (a 400 above it).
        t2i_max_steps: bound on num_inference_steps (a 400 above it; not checked where steps are forced).
        t2i_warmup_size: (width, height) of the warm-up image, from "WxH" (or "N" for NxN); None: the
            device's default, `warmup_size(device)`.
        t2i_image_format: "png" or "jpeg" (T2I_IMAGE_FORMAT also accepts "jpg").
        t2i_png_level: zlib level 0-9 of PNG encoding. t2i_jpeg_quality: Pillow's JPEG quality, 1-100.
        t2i_lora_cache_size: resident LoRA adapters before the least recently used is evicted.
        safety_checker_device: the safety checker's torch device; None: the runner's device.
        t2i_compile_mode / t2i_compile_backend: torch.compile's mode and backend for the SFAST fallback.
    """

    t2i_max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1)
    t2i_max_steps: int = Field(200, ge=1)
    t2i_warmup_size: Annotated[tuple[int, int] | None, NoDecode] = None
    t2i_image_format: Literal["png", "jpeg"] = "png"
    t2i_png_level: int = Field(DEFAULT_PNG_LEVEL, ge=0, le=9)
    t2i_jpeg_quality: int = Field(90, ge=1, le=100)
    t2i_lora_cache_size: int = Field(12, ge=1)
    safety_checker_device: str | None = None
    t2i_compile_mode: str = "default"
    t2i_compile_backend: str = "inductor"

    @field_validator("t2i_warmup_size", mode="before")
    @classmethod
    def _parse_size(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        if not value.strip():
            return None  # set but empty: the device's default
        width, _, height = value.strip().lower().partition("x")
        return width.strip(), (height or width).strip()

    @field_validator("t2i_warmup_size")
    @classmethod
    def _check_size(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and any(side <= 0 or side % 8 for side in value):
            raise ValueError("width and height must be positive multiples of 8, as in 1024x1024")
        return value

    @field_validator("t2i_image_format", mode="before")
    @classmethod
    def _parse_format(cls, value: object) -> object:
        fmt = FORMATS.get(str(value).strip().lower())
        if fmt is None:
            raise ValueError("go-livepeer accepts png or jpeg (and gif) only")
        return fmt

    @field_validator("safety_checker_device", mode="before")
    @classmethod
    def _parse_device(cls, value: object) -> object:
        return value if not isinstance(value, str) or value.strip() else None  # set but empty: the default

    def warmup_size(self, device: str) -> tuple[int, int]:
        """The warm-up image's (width, height) in pixels: T2I_WARMUP_SIZE, else 1024x1024 on a GPU (the
        common SDXL shape, whose compiled graphs the first requests need) and 512x512 on the CPU.

        Args:
            device: the runner's torch device, "cuda:N" or "cpu".
        """
        if self.t2i_warmup_size is not None:
            return self.t2i_warmup_size
        return (1024, 1024) if device.startswith("cuda") else (512, 512)
