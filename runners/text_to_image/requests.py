"""Request rules of `POST /text-to-image` (contract 3.5, 8.1, Q17, Q29): validation before a request takes a
slot, `|` prompt splitting, seeds. Pure functions: the runner applies them, tests call them directly."""

from __future__ import annotations

import random

from runner_sdk import BadRequest
from runner_sdk.schemas import TextToImageParams

PROMPT_REQUIRED = "Prompt must be provided."
SEED_MAX = 2**32 - 1


def split_prompt(text: str, key_prefix: str = "prompt", separator: str = "|", max_splits: int = 3) -> dict[str, str]:
    """ai-runner's split_prompt: `a|b|c|d|e` -> prompt=a, prompt_2=b, prompt_3=c, prompt_4="d|e".
    Segments are stripped and empty ones dropped, so a whitespace- or pipe-only text gives {}."""
    parts = [p.strip() for p in text.split(separator, max_splits)]
    parts = [p for p in parts if p]
    return {key_prefix if i == 0 else f"{key_prefix}_{i + 1}": p for i, p in enumerate(parts)}


def validate(req: TextToImageParams, loaded_model_id: str, max_pixels: int, max_steps: int | None = None) -> None:
    """Every caller error becomes a 400 here, before the request uses a slot or the GPU."""
    if not split_prompt(req.prompt):
        # "" is upstream's 400; whitespace- or pipe-only prompts were a 500 there (Q17).
        raise BadRequest(PROMPT_REQUIRED)
    if req.model_id and req.model_id != loaded_model_id:
        raise BadRequest(f"pipeline configured with {loaded_model_id} but called with {req.model_id}.")
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
