"""Text-to-image runner: SDXL-Lightning, RealVisXL, SDXL-Turbo and any diffusers text-to-image repository,
behind go-livepeer's `/text-to-image` contract (sections 3.5, 8.1, 9).

Start-up: resolve the repositories in MODEL_DIR -> read the weights (fp16 variant when present on a GPU,
fp32 on the CPU, BFLOAT16 on request) -> move to the device -> SFAST or DEEPCACHE -> one warm-up image, so
the first real request is as fast as the rest (and compiled graphs exist before /health says ready).

A request: the SDK checks its schema and model id; `decode` validates the rest and plans the pipeline call
(every caller error is a 400 before it takes a slot); `predict` runs on a job thread, one image at a time
with seed + i: denoise (cancellable at each step), VAE decode, the safety flag, PNG encoding. Each stage is
timed into the Server-Timing header.

Where the parts live: options.py (env vars), models.py (what a MODEL_ID means), loading.py (weights into
a pipeline), vae.py, optimise.py (SFAST, DEEPCACHE), requests.py (request rules), loras.py, safety.py and
encode.py.
"""

from __future__ import annotations

import queue
from typing import Any

from runner_sdk import BadRequest, Job, LoadContext, Runner, routes, schemas
from runner_sdk.integrity import integrity_of, is_finite

from . import optimise
from .encode import data_url
from .loading import load_safety_checker, pipeline_shell, read_pipeline, resolve_weights
from .loras import AdapterLock, LoraCache
from .models import ModelKind, classify, download_plan
from .options import TextToImageOptions
from .requests import Generation, decode_request, generation
from .safety import SafetyChecker
from .vae import Float32Vae, decode_latents, keep_vae_precision, to_uint8


class TextToImageRunner(Runner[schemas.TextToImageParams, Generation]):
    """`POST /text-to-image` for one diffusers text-to-image model; options from `TextToImageOptions`."""

    route = routes.TEXT_TO_IMAGE
    Options = TextToImageOptions
    oom_message = "Out of memory error. Try reducing output image resolution."
    error_message = "Text-to-image pipeline error."
    options: TextToImageOptions

    def __init__(self, settings, device: str, options: TextToImageOptions | None = None):
        super().__init__(settings, device, options)
        self.warmup_size = self.options.warmup_size(device)
        self.kind: ModelKind | None = None
        self.pipe = None
        self.variant: str | None = None
        self.safety: SafetyChecker | None = None
        self.safety_note: str | None = None  # why there is no safety checker
        self.loras: LoraCache | None = None
        self.adapter_lock = AdapterLock()
        self._pipes: queue.Queue = queue.Queue()  # one pipeline object per slot, sharing the networks
        self.deepcache = None
        self.last_call: dict[str, Any] = {}  # what the latest image ran with (steps, guidance, timesteps)
        self.last_steps_run = 0
        self._float32_vae = Float32Vae()  # made on the first fp16/bf16 VAE overflow

    # --- start-up ---------------------------------------------------------------------------------
    def setup(self, ctx: LoadContext) -> None:
        """Load MODEL_ID onto the device, apply SFAST or DEEPCACHE, and load the safety checker.

        Raises:
            RuntimeError: SFAST and DEEPCACHE are both set. UnsupportedModel: a Lightning step count other
            than 2, 4 or 8. ModelNotFound: weights absent from MODEL_DIR. Each puts the runner in ERROR.
        """
        import torch
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        diffusers_logging.disable_progress_bar()  # load-time bars are noise in a container log
        transformers_logging.disable_progress_bar()
        s = ctx.settings
        if s.sfast and s.deepcache:
            raise RuntimeError(optimise.BOTH_FLAGS)
        self.kind = kind = classify(s.model_id)  # an unsupported Lightning step count fails here (Q23)
        with ctx.phase("resolve"):
            main, plan = resolve_weights(kind, s.model_id, s.model_dir, ctx.device, s.bfloat16)
        ctx.report(dtype=plan.dtype)
        self.variant, dtype = plan.variant, getattr(torch, plan.dtype)
        with ctx.phase("read_weights"):
            pipe = self.read_pipeline(kind, main, dtype, plan.variant, s.model_dir, ctx.device)
        with ctx.phase("to_device"):
            pipe.to(ctx.device)
            if note := keep_vae_precision(pipe, ctx.device):
                ctx.note(note)
        if getattr(pipe, "safety_checker", None) is not None:
            pipe.safety_checker = None  # SD 1.x's built-in checker blanks images; ours only flags
        self.safety, self.safety_note = load_safety_checker(ctx, self.options.safety_checker_device, dtype)
        with ctx.phase("optimise"):
            pipe = self._optimise(pipe, kind, ctx)
        self.pipe = pipe
        self.loras = LoraCache(pipe, s.model_dir, ctx.device, self.options.t2i_lora_cache_size)
        # One pipeline object per slot, sharing the networks: a scheduler holds per-run state (timesteps,
        # step index), so concurrent requests must not share one. DeepCache has put its single one already.
        if self.deepcache is None:
            for _ in range(s.capacity):
                self._pipes.put(pipeline_shell(pipe))

    def read_pipeline(self, kind: ModelKind, main, dtype, variant: str | None, model_dir, device: str):
        """Read the pipeline's weights (`loading.read_pipeline`); a subclass serving another task (the
        image-to-image runner) builds its own pipeline class here from the same weights."""
        return read_pipeline(kind, main, dtype, variant, model_dir, device)

    def size_kwargs(self, inputs: Generation) -> dict[str, int]:
        """The output size keywords of the pipeline call (an image-to-image pipeline takes none)."""
        return {"width": inputs.width, "height": inputs.height}

    def _optimise(self, pipe, kind: ModelKind, ctx: LoadContext):
        """SFAST (stable-fast, else torch.compile) or DEEPCACHE, as the flags say; returns the pipeline."""
        s = ctx.settings
        if s.sfast:
            pipe, applied = optimise.apply_sfast(pipe, s.model_dir, self.options.t2i_compile_mode,
                                                 self.options.t2i_compile_backend)
            self._applied(ctx, "SFAST", applied)
        if s.deepcache and not kind.deepcache_allowed:
            ctx.report(DEEPCACHE="skipped (Lightning/Turbo model)")
            ctx.note(f"DEEPCACHE skipped: not applied to Lightning/Turbo models ({s.model_id})")
        elif s.deepcache:
            # DeepCache reads the step index from the pipeline it wraps, so it wraps the one pipeline object
            # that runs (its state lives in the shared UNet: one slot denoises at a time).
            shell = pipeline_shell(pipe)
            self.deepcache, applied = optimise.apply_deepcache(shell)
            self._pipes.put(shell)
            self._applied(ctx, "DEEPCACHE", applied)
            if s.capacity > 1:
                ctx.note("DEEPCACHE keeps per-run state in the UNet: requests denoise one at a time")
        return pipe

    @staticmethod
    def _applied(ctx: LoadContext, flag: str, what: str) -> None:
        # Recorded for /runner/info's optimisations_applied, and a note: an operator who set the flag sees
        # in the notes which implementation ran.
        ctx.report(**{flag: what})
        ctx.note(f"{flag}: {what}")

    def warmup(self) -> None:
        """One image at the common shape (T2I_WARMUP_SIZE), with CFG on when the model uses it, so the
        compiled graphs, cuDNN plans and allocator pools the first real request needs already exist."""
        assert self.kind is not None
        width, height = self.warmup_size
        request = schemas.TextToImageParams(prompt="a warm-up photo of a lighthouse", width=width, height=height,
                                            seed=0, num_inference_steps=2, safety_check=self.safety is not None)
        self.predict(generation(request, self.kind), Job())

    # --- per request ------------------------------------------------------------------------------
    def decode(self, request: schemas.TextToImageParams) -> Generation:
        """Validate a request against this model and these options, and plan its pipeline call.

        Raises:
            BadRequest: the prompt, size, image count, steps (T2I_MAX_STEPS, unless forced), pixel budget
            (T2I_MAX_PIXELS), seed or `loras` is invalid; answered 400 before the request takes a slot.
        """
        assert self.kind is not None
        return decode_request(request, self.kind, self.options.t2i_max_pixels, self.options.t2i_max_steps)

    def predict(self, inputs: Generation, job: Job) -> schemas.ImageResponse:
        """Generate `inputs`' images, one per seed, on a free pipeline object.

        LoRA changes touch the shared networks, so a request that applies LoRAs (or runs while any are
        resident, and must zero them) holds the adapter lock exclusively; others share it.

        Raises:
            BadRequest: a LoRA not in MODEL_DIR or incompatible with the model; diffusers rejected the inputs.
            JobCancelled: the client went away (checked at every denoising step).
        """
        assert self.loras is not None
        exclusive = bool(inputs.loras) or self.loras.active
        with (self.adapter_lock.exclusive() if exclusive else self.adapter_lock.shared()):
            if exclusive:
                self.loras.apply(inputs.loras)
            pipe = self._pipes.get()
            try:
                images = [self._one_image(pipe, inputs, seed, job) for seed in inputs.seeds]
            finally:
                self._pipes.put(pipe)
        return schemas.ImageResponse(images=images)

    def _one_image(self, pipe, inputs: Generation, seed: int, job: Job) -> schemas.Media:
        """Denoise -> VAE decode -> safety flag -> data URL, each stage timed."""
        import torch

        generator = torch.Generator(self.device).manual_seed(seed)
        steps_run = 0

        def on_step_end(_pipe, _step, _timestep, tensors):
            nonlocal steps_run
            steps_run += 1
            job.step()  # a disconnected client stops the loop here
            return tensors

        decode_here = hasattr(pipe, "vae") and hasattr(pipe, "unet")  # else the pipeline decodes itself
        with job.stage("denoise"), torch.inference_mode():
            try:
                out = pipe(**inputs.call, **self.size_kwargs(inputs), generator=generator,
                           num_images_per_prompt=1, output_type="latent" if decode_here else "np",
                           callback_on_step_end=on_step_end)
            except ValueError as exc:  # diffusers' input checks: the caller's error (contract 4.4)
                raise BadRequest(f"Error during model execution: {exc}.") from exc
            finally:
                self.last_steps_run = steps_run  # also when cancelled part-way
            _sync(self.device)
        self._record_call(pipe, inputs, steps_run)
        with job.stage("vae"), torch.inference_mode():
            pixels = self._pixels(pipe, out.images) if decode_here else self._checked_np(out.images[0])
            _sync(self.device)
        nsfw = False
        if inputs.safety_check and self.safety is not None:
            with job.stage("safety"):
                nsfw = self.safety.flags([pixels])[0]
        with job.stage("encode"):
            o = self.options
            url = data_url(pixels, o.t2i_image_format, o.t2i_png_level, o.t2i_jpeg_quality)
        return schemas.Media(url=url, seed=seed, nsfw=nsfw)

    def _pixels(self, pipe, latents):
        """Latents -> uint8 pixels, never from NaN: non-finite latents are a 500 (nothing to recover: the
        denoising itself diverged); a reduced-precision VAE whose output overflows decodes again in float32
        (logged, counted in /metrics as runner_output_nonfinite_total{stage="pixels",outcome="recovered"})."""
        integrity = integrity_of(self)
        integrity.check(latents, "latents", "Try a lower guidance_scale or fewer steps.")
        image = decode_latents(pipe, latents)
        if not is_finite(image) and str(pipe.vae.dtype) != "torch.float32":
            image = decode_latents(pipe, latents, vae=self._float32_vae.get(pipe.vae))
            if is_finite(image):
                integrity.recovered("pixels", f"the {pipe.vae.dtype} VAE overflowed; decoded again in float32")
        integrity.check(image, "pixels")
        return to_uint8(image)

    def _checked_np(self, image):
        """A pipeline's own "np" output (0..1 floats), checked before the uint8 conversion turns NaN black."""
        integrity_of(self).check(image, "pixels")
        return to_uint8(image)

    def _record_call(self, pipe, inputs: Generation, steps_run: int) -> None:
        scheduler = pipe.scheduler
        self.last_call = {"steps_run": steps_run, "guidance_scale": inputs.call["guidance_scale"],
                          "num_inference_steps": len(scheduler.timesteps),
                          "timesteps": [float(t) for t in scheduler.timesteps],
                          "scheduler": type(scheduler).__name__,
                          "timestep_spacing": scheduler.config.get("timestep_spacing")}

    # --- reporting --------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """What was loaded and the options that shape requests, for /runner/info's `runner` object."""
        kind = self.kind
        scheduler = self.pipe.scheduler if self.pipe is not None else None
        return {
            "pipeline_class": type(self.pipe).__name__ if self.pipe is not None else None,
            "variant": self.variant,
            "lightning": bool(kind and kind.lightning),
            "forced_steps": kind.steps if kind else None,
            "forced_guidance_scale": kind.forced_guidance if kind else None,
            "scheduler": type(scheduler).__name__ if scheduler is not None else None,
            "timestep_spacing": scheduler.config.get("timestep_spacing") if scheduler is not None else None,
            "safety_checker": "loaded" if self.safety is not None else self.safety_note,
            "loras_resident": list(self.loras.resident) if self.loras else [],
            "max_pixels": self.options.t2i_max_pixels,
            "image_format": self.options.t2i_image_format,
            "warmup_size": "x".join(map(str, self.warmup_size)),
            "nonfinite_outputs": integrity_of(self).snapshot(),
        }

    @classmethod
    def download_plan(cls, model_id: str) -> list[tuple[str, list[str] | None]]:
        """The repositories (and file patterns) `runner-sdk download` fetches, safety checker included."""
        return download_plan(model_id)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)
