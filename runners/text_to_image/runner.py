"""Text-to-image runner: SDXL-Lightning, RealVisXL, SDXL-Turbo and any diffusers text-to-image repository,
behind go-livepeer's `/text-to-image` contract (sections 3.5, 8.1, 9).

Start-up: resolve the repositories in MODEL_DIR -> read the weights (fp16 variant when present on a GPU,
fp32 on the CPU, BFLOAT16 on request) -> move to the device -> SFAST or DEEPCACHE -> one warm-up image, so
the first real request is as fast as the rest (and compiled graphs exist before /health says ready).

A request: validated in `check` (every caller error is a 400 before it takes a slot), then in `predict`
on a job thread, one image at a time with seed + i: denoise (cancellable at each step), VAE decode, the
safety flag, PNG encoding. Each stage is timed into the Server-Timing header.
"""

from __future__ import annotations

import copy
import logging
import os
import queue
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner_sdk import BadRequest, Job, LoadContext, Runner, routes, schemas
from runner_sdk.resolve import ModelNotFound, cache_folder, is_local_dir, resolve_snapshot

from . import optimise
from .encode import DEFAULT_PNG_LEVEL, data_url
from .loras import AdapterLock, LoraCache, parse_loras
from .models import (
    LIGHTNING_REPO,
    SDXL_BASE_REPO,
    ModelKind,
    classify,
    download_plan,
    load_plan,
)
from .requests import seeds_for, split_prompt, validate
from .safety import SafetyChecker

log = logging.getLogger("runner.text_to_image")

DEFAULT_MAX_PIXELS = 8 * 1024 * 1024  # e.g. 8 images of 1024x1024, or 2 of 2048x2048 (T2I_MAX_PIXELS)


@dataclass
class Options:
    """Runner-specific env vars (documented in README.md)."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_steps: int = 200
    warmup_size: tuple[int, int] = (1024, 1024)
    image_format: str = "png"
    png_level: int = DEFAULT_PNG_LEVEL
    jpeg_quality: int = 90
    lora_cache_size: int = 12
    safety_device: str | None = None
    compile_mode: str = "default"
    compile_backend: str = "inductor"

    @classmethod
    def from_env(cls, device: str) -> Options:
        env = os.environ
        size = env.get("T2I_WARMUP_SIZE", "1024x1024" if device.startswith("cuda") else "512x512")
        width, _, height = size.lower().partition("x")
        fmt = env.get("T2I_IMAGE_FORMAT", "png").strip().lower()
        if fmt not in {"png", "jpeg", "jpg"}:
            raise ValueError(f"T2I_IMAGE_FORMAT={fmt!r}: go-livepeer accepts png or jpeg (and gif) only")
        return cls(
            max_pixels=int(env.get("T2I_MAX_PIXELS", DEFAULT_MAX_PIXELS)),
            max_steps=int(env.get("T2I_MAX_STEPS", 200)),
            warmup_size=(int(width), int(height or width)),
            image_format="jpeg" if fmt in {"jpeg", "jpg"} else "png",
            png_level=int(env.get("T2I_PNG_LEVEL", DEFAULT_PNG_LEVEL)),
            jpeg_quality=int(env.get("T2I_JPEG_QUALITY", 90)),
            lora_cache_size=int(env.get("T2I_LORA_CACHE_SIZE", 12)),
            safety_device=env.get("SAFETY_CHECKER_DEVICE") or None,
            compile_mode=env.get("T2I_COMPILE_MODE", "default"),
            compile_backend=env.get("T2I_COMPILE_BACKEND", "inductor"),
        )


class TextToImageRunner(Runner):
    route = routes.TEXT_TO_IMAGE
    oom_message = "Out of memory error. Try reducing output image resolution."
    error_message = "Text-to-image pipeline error."

    def __init__(self, settings, device: str):
        super().__init__(settings, device)
        self.options = Options.from_env(device)
        self.kind: ModelKind | None = None
        self.pipe = None
        self.safety: SafetyChecker | None = None
        self.safety_note: str | None = None
        self.variant: str | None = None
        self.loras: LoraCache | None = None
        self.adapter_lock = AdapterLock()
        self._pipes: queue.Queue = queue.Queue()
        self.deepcache = None
        self.last_call: dict[str, Any] = {}  # what the latest image ran with (steps, guidance, timesteps)
        self.last_steps_run = 0

    # --- start-up ---------------------------------------------------------------------------------
    def setup(self, ctx: LoadContext) -> None:
        import torch
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        diffusers_logging.disable_progress_bar()  # load-time bars are noise in a container log
        transformers_logging.disable_progress_bar()
        s = ctx.settings
        if s.sfast and s.deepcache:
            raise RuntimeError(optimise.BOTH_FLAGS)
        self.kind = kind = classify(s.model_id)  # an unsupported Lightning step count fails here (Q23)
        device = ctx.device
        with ctx.phase("resolve"):
            main = self._resolve(kind, s.model_id, s.model_dir)
            folder = main if is_local_dir(s.model_id) else cache_folder(s.model_dir, SDXL_BASE_REPO
                                                                        if kind.lightning else s.model_id)
            plan = load_plan(kind, folder, device, s.bfloat16)
        dtype = getattr(torch, plan.dtype)
        self.dtype, self.variant = plan.dtype, plan.variant
        with ctx.phase("read_weights"):
            pipe = self._read(kind, main, dtype, plan.variant, s.model_dir)
        with ctx.phase("to_device"):
            pipe.to(device)
            self._vae_precision(pipe, device, ctx)
        if hasattr(pipe, "safety_checker") and getattr(pipe, "safety_checker", None) is not None:
            pipe.safety_checker = None  # SD 1.x's built-in checker blanks images; ours only flags
        self._load_safety_checker(s.model_dir, device, dtype, ctx)

        with ctx.phase("optimise"):
            if s.sfast:
                pipe, applied = optimise.apply_sfast(pipe, s.model_dir, self.options.compile_mode,
                                                     self.options.compile_backend)
                self._applied(ctx, "SFAST", applied)
            if s.deepcache:
                if kind.deepcache_allowed:
                    # DeepCache reads the step index from the pipeline it wraps, so it wraps the one pipeline
                    # object that runs (its state lives in the shared UNet: one slot denoises at a time).
                    shell = self._shell(pipe)
                    self.deepcache, applied = optimise.apply_deepcache(shell)
                    self._pipes.put(shell)
                    self._applied(ctx, "DEEPCACHE", applied)
                    if s.capacity > 1:
                        ctx.note("DEEPCACHE keeps per-run state in the UNet: requests denoise one at a time")
                else:
                    msg = f"DEEPCACHE skipped: not applied to Lightning/Turbo models ({s.model_id})"
                    log.warning(msg)
                    ctx.note(msg)
                    self.optimisations_applied["DEEPCACHE"] = "skipped (Lightning/Turbo model)"
        self.pipe = pipe
        self.loras = LoraCache(pipe, s.model_dir, device, self.options.lora_cache_size)
        # One pipeline object per slot, sharing the networks: a scheduler holds per-run state (timesteps,
        # step index), so concurrent requests must not share one.
        if self.deepcache is None:
            for _ in range(s.capacity):
                self._pipes.put(self._shell(pipe))

    def _applied(self, ctx: LoadContext, flag: str, what: str) -> None:
        self.optimisations_applied[flag] = what
        log.info("%s: %s", flag, what)
        ctx.note(f"{flag}: {what}")

    @staticmethod
    def _resolve(kind: ModelKind, model_id: str, model_dir: Path) -> Path:
        plan = dict(download_plan(model_id))
        if not kind.lightning:
            return resolve_snapshot(model_id, model_dir, plan.get(model_id))
        base = resolve_snapshot(SDXL_BASE_REPO, model_dir, plan[SDXL_BASE_REPO])
        lightning = resolve_snapshot(LIGHTNING_REPO, model_dir, plan[LIGHTNING_REPO])
        if not (lightning / kind.lightning_unet_file).exists():
            raise ModelNotFound(f"{LIGHTNING_REPO}/{kind.lightning_unet_file} is not in {model_dir}")
        return base

    def _read(self, kind: ModelKind, main: Path, dtype, variant: str | None, model_dir: Path):
        from diffusers import AutoPipelineForText2Image, EulerDiscreteScheduler, StableDiffusionXLPipeline

        if not kind.lightning:
            pipe = _from_pretrained(AutoPipelineForText2Image, main, self.device, **_dtype_kw(dtype),
                                    variant=variant, use_safetensors=True)
            pipe.set_progress_bar_config(disable=True)
            return pipe
        # SDXL-Lightning: the base pipeline with the distilled UNet. The UNet is built on the meta device and
        # takes the file's tensors as they are (no random init of 2.6B parameters, no second copy).
        from accelerate import init_empty_weights
        from diffusers import UNet2DConditionModel
        from safetensors.torch import load_file

        with init_empty_weights():
            unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(main / "unet")))
        unet_file = resolve_snapshot(LIGHTNING_REPO, model_dir, [kind.lightning_unet_file]) / kind.lightning_unet_file
        state = load_file(str(unet_file), device=self.device if self.device.startswith("cuda") else "cpu")
        unet.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
        del state
        pipe = _from_pretrained(StableDiffusionXLPipeline, main, self.device, unet=unet, **_dtype_kw(dtype),
                                variant=variant, use_safetensors=True)
        pipe.set_progress_bar_config(disable=True)
        # ByteDance's recipe: Euler with trailing timesteps (contract 8.1).
        pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
        return pipe

    def _vae_precision(self, pipe, device: str, ctx: LoadContext) -> None:
        """SDXL's VAE overflows in fp16 (force_upcast); diffusers then casts it to fp32 and back on every
        call, mutating a module the slots share. Keep it in bf16 (fp32's range) or fp32 once, instead."""
        import torch

        vae = getattr(pipe, "vae", None)
        if vae is None or vae.dtype != torch.float16 or not getattr(vae.config, "force_upcast", False):
            return
        target = torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
        vae.to(dtype=target)
        vae.register_to_config(force_upcast=False)
        ctx.note(f"VAE kept in {str(target).removeprefix('torch.')} (SDXL's VAE overflows in fp16)")

    def _load_safety_checker(self, model_dir: Path, device: str, dtype, ctx: LoadContext) -> None:
        safety_device = (self.options.safety_device or device).strip().lower()  # upstream lower-cases it
        if not _usable_device(safety_device):
            # Upstream falls back to the default device rather than failing the load (contract 2).
            msg = f"SAFETY_CHECKER_DEVICE={self.options.safety_device!r} is not a usable device: using {device}"
            log.warning(msg)
            ctx.note(msg)
            safety_device = device
        try:
            self.safety = SafetyChecker.load(model_dir, safety_device,
                                             dtype if safety_device.startswith("cuda") else _float32())
        except ModelNotFound as exc:
            self.safety_note = (f"safety checker weights absent in MODEL_DIR ({exc}); nsfw is always false. "
                                "Run `runner-sdk download` for this model to fetch them.")
            log.warning(self.safety_note)
            ctx.note(self.safety_note)

    @staticmethod
    def _shell(pipe):
        """A pipeline object sharing `pipe`'s networks, with its own scheduler and tokenizers.

        Both hold per-call state: a scheduler its timesteps and step index, a fast tokenizer its padding and
        truncation settings on the Rust object (diffusers' encode_prompt switches them between calls), so two
        slots encoding prompts at once must not share one. They are small; the networks are shared."""
        own = {name: copy.deepcopy(component) for name, component in pipe.components.items()
               if name == "scheduler" or name.startswith("tokenizer")}
        shell = type(pipe).from_pipe(pipe, **own)
        shell.set_progress_bar_config(disable=True)
        return shell

    def warmup(self) -> None:
        """One image at the common shape (T2I_WARMUP_SIZE), with CFG on when the model uses it, so the
        compiled graphs, cuDNN plans and allocator pools the first real request needs already exist."""
        width, height = self.options.warmup_size
        request = schemas.TextToImageParams(prompt="a warm-up photo of a lighthouse", width=width, height=height,
                                            seed=0, num_inference_steps=2, safety_check=self.safety is not None)
        self.predict(request, Job())

    # --- per request ------------------------------------------------------------------------------
    def check(self, request: schemas.TextToImageParams) -> None:
        forced = self.kind is not None and self.kind.steps is not None  # Lightning ignores the request's steps
        validate(request, self.settings.model_id, self.options.max_pixels, None if forced else self.options.max_steps)
        parse_loras(request.loras)  # malformed JSON, bad strengths, too many: 400 before a slot is used

    def predict(self, request: schemas.TextToImageParams, job: Job) -> schemas.ImageResponse:
        kind = self.kind
        assert kind is not None and self.loras is not None
        strengths = parse_loras(request.loras)
        prompts = split_prompt(request.prompt)
        negatives = split_prompt(request.negative_prompt, "negative_prompt")
        kwargs: dict[str, Any] = {k: v for k, v in {**prompts, **negatives}.items() if k[-2:] not in {"_3", "_4"}}
        if len(kwargs) < len(prompts) + len(negatives):
            log.warning("SDXL uses two prompts and two negative prompts: extra '|' segments are ignored")
        kwargs["guidance_scale"] = kind.forced_guidance if kind.forced_guidance is not None else request.guidance_scale
        if kind.steps is not None:
            kwargs["num_inference_steps"] = kind.steps  # Lightning: whatever the request says
        elif request.num_inference_steps >= 1:
            kwargs["num_inference_steps"] = request.num_inference_steps
        # else: the pipeline's default (contract 3.5)

        exclusive = bool(strengths) or self.loras.active
        with (self.adapter_lock.exclusive() if exclusive else self.adapter_lock.shared()):
            if exclusive:
                self.loras.apply(strengths)
            pipe = self._pipes.get()
            try:
                images = [self._one_image(pipe, request, seed, kwargs, job) for seed in seeds_for(request)]
            finally:
                self._pipes.put(pipe)
        return schemas.ImageResponse(images=images)

    def _one_image(self, pipe, request: schemas.TextToImageParams, seed: int, kwargs: dict, job: Job) -> schemas.Media:
        import torch

        generator = torch.Generator(self.device).manual_seed(seed)
        steps_run = 0

        def on_step_end(_pipe, _step, _timestep, tensors):
            nonlocal steps_run
            steps_run += 1
            job.step()  # a disconnected client stops the loop here
            return tensors

        decode_here = hasattr(pipe, "vae") and hasattr(pipe, "unet")
        with job.stage("denoise"), torch.inference_mode():
            try:
                out = pipe(**kwargs, width=request.width, height=request.height, generator=generator,
                           num_images_per_prompt=1, output_type="latent" if decode_here else "np",
                           callback_on_step_end=on_step_end)
            except ValueError as exc:  # diffusers' input checks: the caller's error (contract 4.4)
                raise BadRequest(f"Error during model execution: {exc}.") from exc
            finally:
                self.last_steps_run = steps_run  # also when cancelled part-way
            _sync(self.device)
        self.last_call = {"steps_run": steps_run, "guidance_scale": kwargs["guidance_scale"],
                          "num_inference_steps": len(pipe.scheduler.timesteps),
                          "timesteps": [float(t) for t in pipe.scheduler.timesteps],
                          "scheduler": type(pipe.scheduler).__name__,
                          "timestep_spacing": pipe.scheduler.config.get("timestep_spacing")}
        with job.stage("vae"), torch.inference_mode():
            pixels = decode_latents(pipe, out.images) if decode_here else _to_uint8(out.images[0])
            _sync(self.device)
        nsfw = False
        if request.safety_check and self.safety is not None:
            with job.stage("safety"):
                nsfw = self.safety.flags([pixels])[0]
        with job.stage("encode"):
            url = data_url(pixels, self.options.image_format, self.options.png_level, self.options.jpeg_quality)
        return schemas.Media(url=url, seed=seed, nsfw=nsfw)

    # --- reporting --------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
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
            "max_pixels": self.options.max_pixels,
            "image_format": self.options.image_format,
            "warmup_size": "x".join(map(str, self.options.warmup_size)),
        }

    @classmethod
    def download_plan(cls, model_id: str) -> list[tuple[str, list[str] | None]]:
        return download_plan(model_id)


def decode_latents(pipe, latents) -> Any:
    """Latents -> HxWx3 uint8 numpy, as the SDXL pipeline's output step does (un-scaling, optional latent
    mean/std), but with the VAE left in the precision set at start-up and the 0..255 conversion on the device."""
    import torch

    vae = pipe.vae
    latents = latents.to(vae.dtype)
    mean = getattr(vae.config, "latents_mean", None)
    std = getattr(vae.config, "latents_std", None)
    if mean is not None and std is not None:
        mean = torch.tensor(mean).view(1, -1, 1, 1).to(latents)
        std = torch.tensor(std).view(1, -1, 1, 1).to(latents)
        latents = latents * std / vae.config.scaling_factor + mean
    else:
        latents = latents / vae.config.scaling_factor
    image = vae.decode(latents, return_dict=False)[0]
    return _to_uint8(image[0])


def _to_uint8(image) -> Any:
    import numpy as np
    import torch

    if isinstance(image, np.ndarray):  # a pipeline's "np" output: HxWx3 floats in 0..1
        return (image * 255).round().clip(0, 255).astype(np.uint8)
    pixels = ((image.float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    return pixels.permute(1, 2, 0).contiguous().cpu().numpy()


def _from_pretrained(cls, folder: Path, device: str, **kwargs):
    """On a GPU, weights go from the safetensors files straight to the device (device_map), never through
    a full CPU copy; a diffusers build that refuses device_map for this pipeline loads, then moves."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.set_device(torch.device(device))
        try:
            return cls.from_pretrained(str(folder), device_map="cuda", **kwargs)
        except (ValueError, NotImplementedError, TypeError) as exc:
            log.warning("device_map load failed (%s); loading on the CPU, then moving", exc)
    return cls.from_pretrained(str(folder), **kwargs)


def _dtype_kw(dtype) -> dict:
    # Newer diffusers renamed from_pretrained's torch_dtype to dtype (the old name warns).
    try:
        from diffusers.utils.deprecation_utils import _TORCH_DTYPE_DEPRECATION_MESSAGE  # noqa: F401
    except ImportError:
        return {"torch_dtype": dtype}
    return {"dtype": dtype}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def _usable_device(name: str) -> bool:
    import torch

    try:
        parsed = torch.device(name)
    except (RuntimeError, ValueError):
        return False
    if parsed.type == "cuda":
        return torch.cuda.is_available() and (parsed.index or 0) < torch.cuda.device_count()
    return parsed.type == "cpu"


def _float32():
    import torch

    return torch.float32
