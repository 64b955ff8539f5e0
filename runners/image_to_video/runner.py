"""Image-to-video runner: Stable Video Diffusion (`stabilityai/stable-video-diffusion-img2vid-xt`, `-xt-1-1`,
`img2vid`) behind go-livepeer's `/image-to-video` contract (sections 3.9, 8.5, 9.1).

Start-up: resolve MODEL_ID (fp16 variant on a GPU when cached, fp32 on the CPU) -> load -> the VAE kept in
one precision (no per-call casts of a shared module) -> SFAST and/or DEEPCACHE (any id) -> the safety checker
-> warm-up (two calls with SFAST and SFAST_WARMUP, else one) before /health says IDLE.

A request: the input through `runner_sdk.images.open_image` (any format Pillow reads: go-livepeer does not
inspect it), `height`/`width` multiples of 8 and within I2V_MAX_PIXELS; the pipeline resizes the input to
them. Denoising checks cancellation at each step; the latents are decoded I2V_DECODE_CHUNK_SIZE frames at a
time (the VAE's VRAM peak), each chunk turned into PNG data URLs before the next. The response is
`{"frames": [[...one Media per frame...]]}`: exactly one inner list, every frame with the same seed, `nsfw`
from the input image (parity, Q36) and `false` with `safety_check=false` (Q33).
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
from runners.text_to_image.models import download_plan
from runners.text_to_image.vae import keep_vae_precision, to_uint8

from .options import ImageToVideoOptions

DEFAULT_STEPS = 25  # the pipeline's default, for a request's steps below 1


@dataclass(frozen=True)
class Video:
    """One decoded request: the input image (RGB), the frame size, the SVD conditioning, seed and steps."""

    image: Any
    width: int
    height: int
    fps: int
    motion_bucket_id: int
    noise_aug_strength: float
    seed: int
    steps: int
    safety_check: bool


class ImageToVideoRunner(Runner[schemas.ImageToVideoForm, Video]):
    """`POST /image-to-video` for one SVD checkpoint; options from `ImageToVideoOptions` (I2V_* variables)."""

    route = routes.IMAGE_TO_VIDEO
    Options = ImageToVideoOptions
    oom_message = "Out of memory error. Try reducing input or output video resolution."
    error_message = "Image-to-video pipeline error."
    options: ImageToVideoOptions

    def __init__(self, settings, device: str, options: ImageToVideoOptions | None = None):
        super().__init__(settings, device, options)
        self.pipe = None
        self.safety = None
        self.safety_note: str | None = None
        self.deepcache = None
        self._pipes: queue.Queue = queue.Queue()
        self.num_frames = 0
        self.last_steps_run = 0
        self.warmup_calls = 1

    def setup(self, ctx: LoadContext) -> None:
        """Load the SVD checkpoint, fix the VAE's precision, apply SFAST/DEEPCACHE, load the safety checker.

        Raises:
            ModelNotFound: weights absent from MODEL_DIR (the runner enters ERROR).
        """
        from diffusers import StableVideoDiffusionPipeline

        pipe, dtype = load_single_repo(StableVideoDiffusionPipeline, ctx)
        if note := keep_vae_precision(pipe, ctx.device):
            ctx.note(note)
        o = self.options
        pipe, self.deepcache = apply_flags(pipe, ctx, deepcache_allowed=True, compile_mode=o.i2v_compile_mode,
                                           backend=o.i2v_compile_backend)
        if ctx.settings.sfast and o.sfast_warmup:
            self.warmup_calls = 2  # as upstream (9.1): compiled graphs traced before the port says ready
        self.safety, self.safety_note = load_safety_checker(ctx, o.safety_checker_device, dtype)
        self.pipe = pipe
        self.num_frames = int(pipe.unet.config.num_frames)
        self._pipes = slot_pipelines(pipe, self.deepcache, ctx.settings.capacity)

    def warmup(self) -> None:
        """One video (two with SFAST and SFAST_WARMUP) of a blank image at I2V_WARMUP_SIZE, 2 steps,
        fps 6, motion 127, noise 0.02."""
        from PIL import Image

        width, height = self.options.warmup_size(self.device)
        image = Image.new("RGB", (width, height), (0, 0, 0))
        for _ in range(self.warmup_calls):
            self.predict(Video(image, width, height, 6, 127, 0.02, 0, 2, self.safety is not None), Job())

    def decode(self, request: schemas.ImageToVideoForm) -> Video:
        """Decode the input and validate the request (contract 3.9).

        Raises:
            RunnerError: 400 for undecodable bytes or an input over I2V_MAX_INPUT_PIXELS.
            BadRequest: height/width not positive multiples of 8 (upstream's message) or over I2V_MAX_PIXELS;
                steps over I2V_MAX_STEPS; a seed outside int64.
        """
        o = self.options
        h, w = request.height, request.width
        if h % 8 or w % 8:
            raise BadRequest(f"`height` and `width` have to be divisible by 8 but are {h} and {w}.")
        if h <= 0 or w <= 0:
            raise BadRequest(f"`height` and `width` must be positive but are {h} and {w}.")
        if h * w > o.i2v_max_pixels:
            raise BadRequest(f"Requested {w}x{h} = {w * h} pixels per frame, above this runner's limit of "
                             f"{o.i2v_max_pixels} (I2V_MAX_PIXELS).")
        if request.num_inference_steps > o.i2v_max_steps:
            raise BadRequest(f"num_inference_steps must be at most {o.i2v_max_steps} (I2V_MAX_STEPS) but is "
                             f"{request.num_inference_steps}.")
        image = open_image(request.image.path, max_pixels=o.i2v_max_input_pixels)
        steps = request.num_inference_steps if request.num_inference_steps >= 1 else DEFAULT_STEPS
        return Video(image, w, h, request.fps, request.motion_bucket_id, request.noise_aug_strength,
                     seed_or_random(request.seed), steps, request.safety_check)

    def predict(self, inputs: Video, job: Job) -> schemas.VideoResponse:
        """Check the input (safety), denoise, decode in chunks, encode every frame as a PNG data URL.

        Raises:
            BadRequest: diffusers rejected the inputs. JobCancelled: the client went away.
        """
        nsfw = False
        if inputs.safety_check and self.safety is not None:
            with job.stage("safety"):
                nsfw = self.safety.flags([to_uint8_image(inputs.image)])[0]
        pipe = self._pipes.get()
        try:
            latents = self._denoise(pipe, inputs, job)
            urls = self._decode(pipe, latents, job)
        finally:
            self._pipes.put(pipe)
        return schemas.VideoResponse(frames=[[schemas.Media(url=u, seed=inputs.seed, nsfw=nsfw) for u in urls]])

    def _denoise(self, pipe, inputs: Video, job: Job):
        import torch

        self.last_steps_run = 0

        def on_step_end(_pipe, _step, _timestep, tensors):
            self.last_steps_run += 1
            job.step()  # a disconnected client stops the loop here
            return tensors

        if self.deepcache is not None:
            self.deepcache.start_timestep = None  # DeepCache keeps its first run's step origin otherwise
        generator = torch.Generator(self.device).manual_seed(inputs.seed)
        with job.stage("denoise"), torch.inference_mode():
            try:
                out = pipe(inputs.image, height=inputs.height, width=inputs.width, num_frames=self.num_frames,
                           num_inference_steps=inputs.steps, fps=inputs.fps, motion_bucket_id=inputs.motion_bucket_id,
                           noise_aug_strength=inputs.noise_aug_strength, generator=generator, output_type="latent",
                           callback_on_step_end=on_step_end)
            except ValueError as exc:
                raise BadRequest(f"Error during model execution: {exc}.") from exc
            sync(self.device)
        return out.frames  # (1, frames, C, h, w) latents

    def _decode(self, pipe, latents, job: Job) -> list[str]:
        """Latents -> PNG data URLs, I2V_DECODE_CHUNK_SIZE frames per VAE call (bounded VRAM)."""
        import torch

        chunk = self.options.i2v_decode_chunk_size
        urls: list[str] = []
        for start in range(0, latents.shape[1], chunk):
            part = latents[:, start:start + chunk]
            with job.stage("vae"), torch.inference_mode():
                frames = pipe.decode_latents(part.to(pipe.vae.dtype), part.shape[1], chunk)  # (1, 3, n, H, W)
                pixels = [to_uint8(frames[0, :, i]) for i in range(frames.shape[2])]
            with job.stage("encode"):
                urls += [data_url(p, "png", self.options.i2v_png_level) for p in pixels]
            job.step()
        return urls

    def info(self) -> dict[str, Any]:
        """What was loaded, for /runner/info's `runner` object."""
        o = self.options
        return {"pipeline_class": type(self.pipe).__name__ if self.pipe is not None else None,
                "num_frames": self.num_frames, "decode_chunk_size": o.i2v_decode_chunk_size,
                "max_pixels": o.i2v_max_pixels, "warmup_calls": self.warmup_calls,
                "safety_checker": "loaded" if self.safety is not None else self.safety_note}

    @classmethod
    def download_plan(cls, model_id: str) -> list[tuple[str, list[str] | None]]:
        """The checkpoint's fp16 files and configs, and the safety checker."""
        return download_plan(model_id)


def to_uint8_image(image) -> Any:
    """A PIL image -> (H, W, 3) uint8 array (the safety checker's input)."""
    import numpy as np

    return np.asarray(image.convert("RGB"), dtype=np.uint8)
