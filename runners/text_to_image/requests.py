"""Request rules of `POST /text-to-image` (contract 3.5, 8.1, Q17, Q29): validation before a request takes a
slot, `|` prompt splitting, seeds, and what a request becomes for the pipeline (`Generation`). Pure
functions: the runner applies them, tests call them directly.

The model-id check (a non-empty `model_id` other than MODEL_ID is a 400) is the SDK's, before any of these."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any

from runner_sdk import BadRequest
from runner_sdk.schemas import TextToImageParams

from .loras import parse_loras
from .models import ModelKind

log = logging.getLogger("runner.text_to_image")

PROMPT_REQUIRED = "Prompt must be provided."
SEED_MAX = 2**32 - 1


@dataclass(frozen=True)
class Generation:
    """One decoded request: what `TextToImageRunner.predict` runs, one image per seed.

    Attributes:
        width, height: of every image, in pixels (positive multiples of 8 once validated).
        seeds: one per image; image i uses seeds[i] (request seed + i).
        call: the pipeline's keyword arguments shared by every image: prompt, prompt_2, negative_prompt,
            negative_prompt_2 (those present), guidance_scale, and num_inference_steps unless the pipeline's
            default applies.
        loras: LoRA repo id -> strength (empty: the base model).
        safety_check: whether to compute the NSFW flag.
    """

    width: int
    height: int
    seeds: list[int]
    call: dict[str, Any]
    loras: dict[str, float] = field(default_factory=dict)
    safety_check: bool = True


def split_prompt(text: str, key_prefix: str = "prompt", separator: str = "|", max_splits: int = 3) -> dict[str, str]:
    """ai-runner's split_prompt: `a|b|c|d|e` -> prompt=a, prompt_2=b, prompt_3=c, prompt_4="d|e".

    Segments are stripped and empty ones dropped, so a whitespace- or pipe-only text gives {}.

    Args:
        text: the request's prompt (or negative prompt). key_prefix: the keys' stem ("prompt").
        separator, max_splits: as str.split; the last segment keeps any further separators.
    Returns:
        {key_prefix: first, f"{key_prefix}_2": second, ...} for the non-empty segments.
    """
    parts = [p.strip() for p in text.split(separator, max_splits)]
    parts = [p for p in parts if p]
    return {key_prefix if i == 0 else f"{key_prefix}_{i + 1}": p for i, p in enumerate(parts)}


def validate(req: TextToImageParams, max_pixels: int, max_steps: int | None = None) -> None:
    """Every caller error of the request's own fields becomes a 400 here, before it uses a slot or the GPU.

    Args:
        req: the schema-validated request.
        max_pixels: T2I_MAX_PIXELS, the bound on width x height x num_images_per_prompt.
        max_steps: T2I_MAX_STEPS, or None where the model forces its steps (Lightning ignores the request's).
    Raises:
        BadRequest: with the contract's message (upstream's text where upstream answers a 400).
    """
    if not split_prompt(req.prompt):
        # "" is upstream's 400; whitespace- or pipe-only prompts were a 500 there (Q17).
        raise BadRequest(PROMPT_REQUIRED)
    if req.height <= 0 or req.width <= 0:
        raise BadRequest(f"`height` and `width` must be positive but are {req.height} and {req.width}.")
    if req.height % 8 or req.width % 8:
        # diffusers' own message (check_inputs), with a single period (Q27).
        raise BadRequest(f"`height` and `width` have to be divisible by 8 but are {req.height} and {req.width}.")
    if req.num_images_per_prompt <= 0:
        # Upstream answers 200 {"images": []} (Q29); the gateway clamps to >= 1 anyway.
        raise BadRequest(f"num_images_per_prompt must be at least 1 but is {req.num_images_per_prompt}.")
    pixels = req.height * req.width * req.num_images_per_prompt
    if pixels > max_pixels:
        raise BadRequest(
            f"Requested {req.width}x{req.height} x {req.num_images_per_prompt} images = {pixels} pixels, above this "
            f"runner's limit of {max_pixels} (T2I_MAX_PIXELS); reduce the resolution or the number of images.")
    if max_steps is not None and req.num_inference_steps > max_steps:
        # Without a bound, a huge count allocates gigabytes of timesteps before the first step.
        raise BadRequest(f"num_inference_steps must be at most {max_steps} (T2I_MAX_STEPS) but is "
                         f"{req.num_inference_steps}.")
    # torch seeds any 64-bit value; the reply's seeds must also fit Go's int64.
    if req.seed is not None and not -(2**63) <= req.seed <= 2**63 - req.num_images_per_prompt:
        raise BadRequest(f"seed must fit a signed 64-bit integer (for every image) but is {req.seed}.")


def seeds_for(req: TextToImageParams) -> list[int]:
    """Image i uses seed + i; without a seed one is drawn in [0, 2^32-1] (contract 3.5)."""
    base = req.seed if req.seed is not None else random.randint(0, SEED_MAX)
    return [base + i for i in range(req.num_images_per_prompt)]


def decode_request(req: TextToImageParams, kind: ModelKind, max_pixels: int, max_steps: int) -> Generation:
    """Validate a request and turn it into a `Generation`: everything a caller can get wrong is a 400 here.

    Args:
        req: the schema-validated request (its model id already checked by the SDK).
        kind: what MODEL_ID means (forced steps and guidance).
        max_pixels, max_steps: T2I_MAX_PIXELS and T2I_MAX_STEPS (the latter unchecked where steps are forced).
    Raises:
        BadRequest: a field the contract rejects, or a malformed `loras` value (JSON, strengths, too many).
    """
    validate(req, max_pixels, None if kind.steps is not None else max_steps)
    loras = parse_loras(req.loras)
    return generation(req, kind, loras)


def generation(req: TextToImageParams, kind: ModelKind, loras: dict[str, float] | None = None) -> Generation:
    """The pipeline call a request makes, without validating it (the warm-up's own request is trusted).

    SDXL has two text encoders: `a|b` feeds `a` to the first and `b` to the second; further segments are
    dropped with a warning. Lightning forces its step count and, with Turbo, guidance 0; a request's steps
    below 1 leave the pipeline's default (contract 3.5).
    """
    prompts = split_prompt(req.prompt)
    negatives = split_prompt(req.negative_prompt, "negative_prompt")
    call: dict[str, Any] = {k: v for k, v in {**prompts, **negatives}.items() if k[-2:] not in {"_3", "_4"}}
    if len(call) < len(prompts) + len(negatives):
        log.warning("SDXL uses two prompts and two negative prompts: extra '|' segments are ignored")
    call["guidance_scale"] = kind.forced_guidance if kind.forced_guidance is not None else req.guidance_scale
    if kind.steps is not None:
        call["num_inference_steps"] = kind.steps  # Lightning: whatever the request says
    elif req.num_inference_steps >= 1:
        call["num_inference_steps"] = req.num_inference_steps
    return Generation(width=req.width, height=req.height, seeds=seeds_for(req), call=call, loras=loras or {},
                      safety_check=req.safety_check)
