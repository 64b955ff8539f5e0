"""Pieces the upscale and image-to-video runners share with image-to-image (and, through it, text-to-image):
finding a single-repository diffusers model in MODEL_DIR with the text-to-image dtype rules, loading it as a
given pipeline class, seeds, and the SFAST/DEEPCACHE flags as section 9.1 applies them."""

from __future__ import annotations

import queue
import random

from runner_sdk import BadRequest, LoadContext
from runner_sdk.resolve import resolve_snapshot
from runners.text_to_image import optimise
from runners.text_to_image.loading import dtype_kwargs, from_pretrained, pipeline_shell
from runners.text_to_image.models import classify, download_plan, load_plan
from runners.text_to_image.requests import SEED_MAX


def load_single_repo(cls, ctx: LoadContext):
    """Resolve MODEL_ID in MODEL_DIR and load it as `cls` (a diffusers pipeline class), timed by phase.

    The dtype and variant follow the text-to-image rules (contract 8.5, 8.6): fp16 with the fp16 variant on a
    GPU when `*.fp16.safetensors` are cached (BFLOAT16 swaps the dtype), fp32 on the CPU.

    Args:
        cls: e.g. StableDiffusionUpscalePipeline. ctx: the load context (settings, device, phases, report).
    Returns:
        (the pipeline on ctx.device with progress bars off, its torch dtype).
    Raises:
        ModelNotFound: the repository is not in MODEL_DIR.
    """
    import torch
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    from runner_sdk.resolve import cache_folder, is_local_dir

    diffusers_logging.disable_progress_bar()  # load-time bars are noise in a container log
    transformers_logging.disable_progress_bar()
    s = ctx.settings
    with ctx.phase("resolve"):
        patterns = dict(download_plan(s.model_id)).get(s.model_id)
        main = resolve_snapshot(s.model_id, s.model_dir, patterns)
        folder = main if is_local_dir(s.model_id) else cache_folder(s.model_dir, s.model_id)
        plan = load_plan(classify(s.model_id), folder, ctx.device, s.bfloat16)
    ctx.report(dtype=plan.dtype)
    dtype = getattr(torch, plan.dtype)
    with ctx.phase("read_weights"):
        pipe = from_pretrained(cls, main, ctx.device, **dtype_kwargs(dtype), variant=plan.variant,
                               use_safetensors=True)
    with ctx.phase("to_device"):
        pipe.to(ctx.device)
    pipe.set_progress_bar_config(disable=True)
    return pipe, dtype


def apply_flags(pipe, ctx: LoadContext, *, deepcache_allowed: bool, compile_mode: str = "default",
                backend: str = "inductor"):
    """SFAST then DEEPCACHE as the flags say (contract 9.1), each reported and noted; never fails start-up
    because an optimiser is missing (a failed DeepCache wrap is a note).

    Args:
        pipe: the pipeline on its device. ctx: the load context.
        deepcache_allowed: False for `[-_]lightning`/`[-_]turbo` ids on the upscaler (9.1); True for SVD.
        compile_mode, backend: torch.compile's, for the SFAST fallback.
    Returns:
        (the pipeline, the DeepCache helper or None).
    """
    s = ctx.settings
    helper = None
    with ctx.phase("optimise"):
        if s.sfast:
            pipe, applied = optimise.apply_sfast(pipe, s.model_dir, compile_mode, backend)
            ctx.report(SFAST=applied)
            ctx.note(f"SFAST: {applied}")
        if s.deepcache and not deepcache_allowed:
            ctx.report(DEEPCACHE="skipped (Lightning/Turbo model)")
            ctx.note(f"DEEPCACHE skipped: not applied to Lightning/Turbo models ({s.model_id})")
        elif s.deepcache:
            try:
                helper, applied = optimise.apply_deepcache(pipe)
            except Exception as exc:  # noqa: BLE001 - an optimiser must never fail start-up (9.1)
                ctx.report(DEEPCACHE=f"not applied ({type(exc).__name__})")
                ctx.note(f"DEEPCACHE could not wrap {type(pipe).__name__}: {exc}")
            else:
                ctx.report(DEEPCACHE=applied)
                ctx.note(f"DEEPCACHE: {applied}")
    return pipe, helper


def slot_pipelines(pipe, deepcache, capacity: int) -> queue.Queue:
    """One pipeline object per capacity slot, sharing `pipe`'s networks (each with its own scheduler and
    tokenizers). DeepCache keeps its state in the one pipeline it wraps: then requests denoise one at a time."""
    slots: queue.Queue = queue.Queue()
    for _ in range(1 if deepcache is not None else capacity):
        slots.put(pipe if deepcache is not None else pipeline_shell(pipe))
    return slots


def seed_or_random(seed: int | None, count: int = 1) -> int:
    """`seed` (0 included: Q35), or one drawn in [0, 2^32-1] when absent.

    Raises:
        BadRequest: a seed (plus `count` - 1) that does not fit Go's int64.
    """
    if seed is None:
        return random.randint(0, SEED_MAX)
    if not -(2**63) <= seed <= 2**63 - count:
        raise BadRequest(f"seed must fit a signed 64-bit integer but is {seed}.")
    return seed


def sync(device: str) -> None:
    """Wait for the device's queued work (so stage timings are real)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)
