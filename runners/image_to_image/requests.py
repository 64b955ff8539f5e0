"""Request rules of `POST /image-to-image` (contract 3.8, 8.4, Q29, Q34): validation before a request takes a
slot, seeds, and the pipeline call a request becomes (a text-to-image `Generation` whose call carries the
input image). Pure functions: the runner applies them, tests call them directly."""

from __future__ import annotations

from typing import Any

from runner_sdk import BadRequest
from runner_sdk.schemas import ImageToImageForm
from runners.text_to_image.loras import parse_loras
from runners.text_to_image.requests import SEED_MAX, Generation

from .models import ImageModel

# The turbo rule of upstream (raise strength to 1/steps) also keeps Lightning at one step or more.
DEFAULT_STEPS = 50  # diffusers' img2img default, used when a request's steps are below 1


def fit_to_multiple_of_8(image):
    """`image` resized down to the nearest multiples of 8 (what diffusers' image processor would do; done
    here so the output size is known before the call).

    Raises:
        BadRequest: a side shorter than 8 pixels.
    """
    width, height = image.size
    if width < 8 or height < 8:
        raise BadRequest(f"Input image of {width}x{height} pixels is too small: each side must be at least 8.")
    target = (width // 8 * 8, height // 8 * 8)
    if target == (width, height):
        return image
    from PIL import Image

    return image.resize(target, Image.Resampling.LANCZOS)


def validate(req: ImageToImageForm, model: ImageModel, width: int, height: int, max_pixels: int,
             max_steps: int) -> None:
    """Every caller error of the request's own fields is a 400 here, before it uses a slot.

    Args:
        req: the schema-validated form. model: what MODEL_ID means.
        width, height: the output size (the input's, rounded down to multiples of 8).
        max_pixels: T2I_MAX_PIXELS, the bound on width x height x num_images_per_prompt.
        max_steps: T2I_MAX_STEPS (not checked where the model forces its steps).
    Raises:
        BadRequest: with upstream's message where upstream answers a 400 (strength), else a specific one.
    """
    if model.uses_strength and not 0.0 <= req.strength <= 1.0:
        raise BadRequest(f"Error during model execution: The value of strength should in [0.0, 1.0] but is "
                         f"{req.strength}.")
    if req.num_images_per_prompt <= 0:
        # Upstream answers 200 {"images": []} (Q29); the gateway raises the value to 1 anyway.
        raise BadRequest(f"num_images_per_prompt must be at least 1 but is {req.num_images_per_prompt}.")
    pixels = width * height * req.num_images_per_prompt
    if pixels > max_pixels:
        raise BadRequest(
            f"Requested {width}x{height} x {req.num_images_per_prompt} images = {pixels} pixels, above this "
            f"runner's limit of {max_pixels} (T2I_MAX_PIXELS); reduce the input resolution or the number of images.")
    if model.kind.steps is None and req.num_inference_steps > max_steps:
        raise BadRequest(f"num_inference_steps must be at most {max_steps} (T2I_MAX_STEPS) but is "
                         f"{req.num_inference_steps}.")
    if req.seed is not None and not -(2**63) <= req.seed <= 2**63 - req.num_images_per_prompt:
        raise BadRequest(f"seed must fit a signed 64-bit integer (for every image) but is {req.seed}.")


def plan_call(model: ImageModel, image, prompt: str, negative_prompt: str, strength: float, guidance_scale: float,
              image_guidance_scale: float, steps: int) -> dict[str, Any]:
    """The pipeline's keyword arguments (contract 8.4, Q34).

    - Lightning: its step count and guidance 0, whatever the request says; `strength` applies (upstream drops it).
    - The exact Turbo ids: guidance 0.
    - Lightning and Turbo: `strength` raised to at least 1/steps, so at least one step denoises.
    - InstructPix2Pix: `image_guidance_scale`, no `strength`.
    - A request's steps below 1: the pipeline's default (50), as upstream.

    Returns:
        prompt, image, guidance_scale, num_inference_steps when set, negative_prompt when non-empty, and
        strength or image_guidance_scale.
    """
    kind = model.kind
    call: dict[str, Any] = {"prompt": prompt, "image": image}
    if negative_prompt:
        call["negative_prompt"] = negative_prompt
    call["guidance_scale"] = kind.forced_guidance if kind.forced_guidance is not None else guidance_scale
    if kind.steps is not None:
        call["num_inference_steps"] = kind.steps
    elif steps >= 1:
        call["num_inference_steps"] = steps
    if model.pix2pix:
        call["image_guidance_scale"] = image_guidance_scale
        return call
    if kind.lightning or kind.turbo:
        strength = max(strength, 1.0 / call.get("num_inference_steps", DEFAULT_STEPS))
    call["strength"] = strength
    return call


def seeds_for(seed: int | None, count: int) -> list[int]:
    """Image i uses seed + i; without a seed one is drawn in [0, 2^32-1]."""
    import random

    base = seed if seed is not None else random.randint(0, SEED_MAX)
    return [base + i for i in range(count)]


def decode_request(req: ImageToImageForm, image, model: ImageModel, max_pixels: int, max_steps: int) -> Generation:
    """Validate a request and plan its pipeline call: everything a caller can get wrong is a 400 here.

    Args:
        req: the schema-validated form (its model id already checked by the SDK).
        image: the decoded input (RGB, upright: `runner_sdk.images.open_image`).
        model: what MODEL_ID means. max_pixels, max_steps: T2I_MAX_PIXELS and T2I_MAX_STEPS.
    Returns:
        A Generation of the output's size, one seed per image, the call carrying the (resized) input.
    Raises:
        BadRequest: a field the contract rejects, a tiny image, or a malformed `loras` value.
    """
    image = fit_to_multiple_of_8(image)
    width, height = image.size
    validate(req, model, width, height, max_pixels, max_steps)
    loras = parse_loras(req.loras)
    call = plan_call(model, image, req.prompt, req.negative_prompt, req.strength, req.guidance_scale,
                     req.image_guidance_scale, req.num_inference_steps)
    return Generation(width=width, height=height, seeds=seeds_for(req.seed, req.num_images_per_prompt), call=call,
                      loras=loras, safety_check=req.safety_check)
