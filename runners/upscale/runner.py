"""Upscale runner: `stabilityai/stable-diffusion-x4-upscaler` (any StableDiffusionUpscalePipeline repository)
behind go-livepeer's `/upscale` contract (sections 3.10, 8.6, 9.1). The output is 4x the input's sides.

Start-up: resolve MODEL_ID in MODEL_DIR (fp16 variant on a GPU when cached, fp32 on the CPU: the
text-to-image rules) -> load -> the VAE kept in one precision (the pipeline would otherwise upcast and
downcast the shared VAE around every call) -> SFAST or DEEPCACHE (not for `[-_]lightning`/`[-_]turbo` ids) -> the safety
checker -> one warm-up upscale, before /health says IDLE.

A request: the input through `runner_sdk.images.open_image` (by content, EXIF upright, RGB, at most
UPSCALE_MAX_INPUT_PIXELS: the output bound is 16x that); inputs larger than UPSCALE_TILE_SIZE are upscaled in
overlapping tiles (tiles.py) so memory is bounded; each denoising step checks for cancellation; noise level and
guidance come from UPSCALE_NOISE_LEVEL and UPSCALE_GUIDANCE_SCALE (upstream's fixed 20 and 9.0). `seed=0` is a
seed (echoed), not "absent" (Q35).
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from typing import Any

from runner_sdk import BadRequest, Job, LoadContext, Runner, routes, schemas
from runner_sdk.images import open_image
from runners.image_to_image.shared import apply_flags, load_single_repo, seed_or_random, slot_pipelines, sync
from runners.text_to_image.encode import data_url
from runners.text_to_image.loading import load_safety_checker
from runners.text_to_image.models import classify, download_plan
from runners.text_to_image.vae import keep_vae_precision, to_uint8

from .options import UpscaleOptions
from .tiles import SCALE, Blender, boxes

DEFAULT_STEPS = 75  # the pipeline's default, for a request's steps below 1 (contract 3.10)


@dataclass(frozen=True)
class Upscale:
    """One decoded request: the input (RGB PIL image), prompt, seed, steps, whether to flag NSFW."""

    image: Any
    prompt: str
    seed: int
    steps: int
    safety_check: bool


class UpscaleRunner(Runner[schemas.UpscaleForm, Upscale]):
    """`POST /upscale` for one x4 upscaler; options from `UpscaleOptions` (UPSCALE_* variables)."""

    route = routes.UPSCALE
    Options = UpscaleOptions
    oom_message = "Out of memory error. Try reducing input image resolution."
    error_message = "Upscale pipeline error."
    options: UpscaleOptions

    def __init__(self, settings, device: str, options: UpscaleOptions | None = None):
        super().__init__(settings, device, options)
        self.pipe = None
        self.safety = None
        self.safety_note: str | None = None
        self.deepcache = None
        self._pipes: queue.Queue = queue.Queue()
        self.last_steps_run = 0
        self.last_tiles = 0

    def setup(self, ctx: LoadContext) -> None:
        """Load the upscaler, apply SFAST/DEEPCACHE, load the safety checker.

        Raises:
            ModelNotFound: weights absent from MODEL_DIR (the runner enters ERROR).
        """
        from diffusers import StableDiffusionUpscalePipeline

        pipe, dtype = load_single_repo(StableDiffusionUpscalePipeline, ctx)
        if note := keep_vae_precision(pipe, ctx.device):  # no per-call casts of the VAE the slots share
            ctx.note(note)
        if getattr(pipe, "safety_checker", None) is not None:
            pipe.safety_checker = None  # ours only flags
        o = self.options
        if ctx.settings.sfast:
            ctx.note("SFAST_WARMUP is ignored for upscale (contract 9.1); SFAST on the upscaler is unproven upstream")
        pipe, self.deepcache = apply_flags(pipe, ctx, deepcache_allowed=classify(ctx.settings.model_id).deepcache_allowed,
                                           compile_mode=o.upscale_compile_mode, backend=o.upscale_compile_backend)
        self.safety, self.safety_note = load_safety_checker(ctx, o.safety_checker_device, dtype)
        self.pipe = pipe
        self._pipes = slot_pipelines(pipe, self.deepcache, ctx.settings.capacity)

    def warmup(self) -> None:
        """One upscale of a UPSCALE_WARMUP_SIZE square with 2 steps (0: none)."""
        from PIL import Image

        side = self.options.upscale_warmup_size
        if side:
            image = Image.new("RGB", (side, side), (128, 128, 128))
            self.predict(Upscale(image, "warm-up", 0, 2, self.safety is not None), Job())

    def decode(self, request: schemas.UpscaleForm) -> Upscale:
        """Decode the input and validate the request.

        Raises:
            RunnerError: 400 for undecodable bytes or an input over UPSCALE_MAX_INPUT_PIXELS.
            BadRequest: steps over UPSCALE_MAX_STEPS, a seed outside int64.
        """
        o = self.options
        image = open_image(request.image.path, max_pixels=o.upscale_max_input_pixels)
        # The x4 upscaler's VAE works on multiples of 4 pixels (diffusers rounds other sizes down and the output
        # is then not 4x the input): crop the at most 3 odd pixels off the right and bottom edges instead.
        width, height = image.size[0] // 4 * 4, image.size[1] // 4 * 4
        if not width or not height:
            raise BadRequest(f"The image must be at least 4x4 pixels but is {image.size[0]}x{image.size[1]}.")
        if (width, height) != image.size:
            image = image.crop((0, 0, width, height))
        if request.num_inference_steps > o.upscale_max_steps:
            raise BadRequest(f"num_inference_steps must be at most {o.upscale_max_steps} (UPSCALE_MAX_STEPS) "
                             f"but is {request.num_inference_steps}.")
        steps = request.num_inference_steps if request.num_inference_steps >= 1 else DEFAULT_STEPS
        return Upscale(image, request.prompt, seed_or_random(request.seed), steps, request.safety_check)

    def predict(self, inputs: Upscale, job: Job) -> schemas.ImageResponse:
        """Upscale 4x, in tiles when the input is larger than UPSCALE_TILE_SIZE; flag; encode.

        Raises:
            BadRequest: diffusers rejected the inputs. JobCancelled: the client went away.
        """
        pipe = self._pipes.get()
        try:
            pixels = self._upscale(pipe, inputs, job)
        finally:
            self._pipes.put(pipe)
        nsfw = False
        if inputs.safety_check and self.safety is not None:
            with job.stage("safety"):
                nsfw = self.safety.flags([pixels])[0]
        with job.stage("encode"):
            url = data_url(pixels, "png", self.options.upscale_png_level)
        return schemas.ImageResponse(images=[schemas.Media(url=url, seed=inputs.seed, nsfw=nsfw)])

    def _upscale(self, pipe, inputs: Upscale, job: Job):
        o = self.options
        width, height = inputs.image.size
        tiles = boxes(width, height, o.upscale_tile_size, o.upscale_tile_overlap)
        self.last_tiles, self.last_steps_run = len(tiles), 0
        if len(tiles) == 1:
            return to_uint8(self._tile(pipe, inputs, inputs.image, job))
        blender = Blender(width, height, o.upscale_tile_overlap)
        for box in tiles:
            blender.add(box, self._tile(pipe, inputs, inputs.image.crop(box), job))
        return blender.result()

    def _tile(self, pipe, inputs: Upscale, image, job: Job):
        """One pipeline call -> (4h, 4w, 3) floats in 0..1; every tile uses the request's seed."""
        import torch

        def on_step(_step, _timestep, _latents):
            self.last_steps_run += 1
            job.step()  # a disconnected client stops the loop here

        if self.deepcache is not None:
            self.deepcache.start_timestep = None  # DeepCache keeps its first run's step origin otherwise
        generator = torch.Generator(self.device).manual_seed(inputs.seed)
        o = self.options
        with job.stage("denoise"), torch.inference_mode():
            try:
                out = pipe(prompt=inputs.prompt, image=image, num_inference_steps=inputs.steps,
                           guidance_scale=o.upscale_guidance_scale, noise_level=o.upscale_noise_level,
                           generator=generator, output_type="np", callback=on_step, callback_steps=1)
            except ValueError as exc:
                raise BadRequest(f"Error during model execution: {exc}.") from exc
            sync(self.device)
        pixels = out.images[0]
        assert pixels.shape[:2] == (image.size[1] * SCALE, image.size[0] * SCALE), pixels.shape
        return pixels

    def info(self) -> dict[str, Any]:
        """What was loaded and the bounds, for /runner/info's `runner` object."""
        o = self.options
        return {"pipeline_class": type(self.pipe).__name__ if self.pipe is not None else None,
                "safety_checker": "loaded" if self.safety is not None else self.safety_note,
                "max_input_pixels": o.upscale_max_input_pixels, "max_output_pixels": 16 * o.upscale_max_input_pixels,
                "tile_size": o.upscale_tile_size, "tile_overlap": o.upscale_tile_overlap,
                "noise_level": o.upscale_noise_level, "guidance_scale": o.upscale_guidance_scale}

    @classmethod
    def download_plan(cls, model_id: str) -> list[tuple[str, list[str] | None]]:
        """The repositories `runner-sdk download` fetches: the model's fp16 files and configs (upstream omits
        the configs: Q40), and the safety checker."""
        return download_plan(model_id)
