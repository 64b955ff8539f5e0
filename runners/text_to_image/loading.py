"""Reading a text-to-image model from MODEL_DIR (contract 8.1): which snapshot folders, which dtype and weight
variant, the pipeline itself (SDXL-Lightning's distilled UNet on the SDXL base, or AutoPipeline), one
pipeline object per slot, and the safety checker. Nothing here reaches the network when HF_HUB_OFFLINE is set.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path

from runner_sdk import LoadContext
from runner_sdk.resolve import ModelNotFound, cache_folder, is_local_dir, resolve_snapshot

from .models import LIGHTNING_REPO, SDXL_BASE_REPO, LoadPlan, ModelKind, download_plan, load_plan
from .safety import SafetyChecker

log = logging.getLogger("runner.text_to_image")


def resolve_weights(kind: ModelKind, model_id: str, model_dir: Path, device: str,
                    bfloat16: bool) -> tuple[Path, LoadPlan]:
    """Find the snapshot to load and decide its dtype and weight variant.

    Args:
        kind: what MODEL_ID means. model_id: MODEL_ID (a hub id, or a local directory).
        model_dir: MODEL_DIR (HF cache layout). device: "cuda:N" or "cpu". bfloat16: BFLOAT16.
    Returns:
        (the pipeline's snapshot folder: the SDXL base for Lightning, else the model's own;
        the dtype and variant to read it with, from the files in its cache folder).
    Raises:
        ModelNotFound: a repository (or, for Lightning, the step count's UNet file) is not in MODEL_DIR.
    """
    plan = dict(download_plan(model_id))
    if kind.lightning:
        main = resolve_snapshot(SDXL_BASE_REPO, model_dir, plan[SDXL_BASE_REPO])
        lightning = resolve_snapshot(LIGHTNING_REPO, model_dir, plan[LIGHTNING_REPO])
        if not (lightning / kind.lightning_unet_file).exists():
            raise ModelNotFound(f"{LIGHTNING_REPO}/{kind.lightning_unet_file} is not in {model_dir}")
    else:
        main = resolve_snapshot(model_id, model_dir, plan.get(model_id))
    folder = main if is_local_dir(model_id) else cache_folder(model_dir, SDXL_BASE_REPO if kind.lightning
                                                              else model_id)
    return main, load_plan(kind, folder, device, bfloat16)


def read_pipeline(kind: ModelKind, main: Path, dtype, variant: str | None, model_dir: Path, device: str):
    """Read the pipeline's weights, onto `device` directly where diffusers allows it.

    SDXL-Lightning is the base pipeline with the step count's distilled UNet, whose file is loaded as it is
    (the UNet is built on the meta device: no random init of 2.6B parameters, no second copy), and Euler
    with trailing timesteps (ByteDance's recipe, contract 8.1). Any other id goes through
    AutoPipelineForText2Image.

    Args:
        kind: what MODEL_ID means. main: the snapshot from `resolve_weights`.
        dtype: a torch dtype. variant: "fp16" or None. model_dir: MODEL_DIR. device: "cuda:N" or "cpu".
    Returns:
        The pipeline (progress bars off); on a GPU possibly still partly on the CPU (the caller moves it).
    """
    from diffusers import AutoPipelineForText2Image, EulerDiscreteScheduler, StableDiffusionXLPipeline

    if not kind.lightning:
        pipe = from_pretrained(AutoPipelineForText2Image, main, device, **dtype_kwargs(dtype),
                               variant=variant, use_safetensors=True)
        pipe.set_progress_bar_config(disable=True)
        return pipe
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file

    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(main / "unet")))
    unet_file = resolve_snapshot(LIGHTNING_REPO, model_dir, [kind.lightning_unet_file]) / kind.lightning_unet_file
    state = load_file(str(unet_file), device=device if device.startswith("cuda") else "cpu")
    unet.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=True, assign=True)
    del state
    pipe = from_pretrained(StableDiffusionXLPipeline, main, device, unet=unet, **dtype_kwargs(dtype),
                           variant=variant, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
    return pipe


def from_pretrained(cls, folder: Path, device: str, **kwargs):
    """`cls.from_pretrained(folder, **kwargs)`; on a GPU, with the weights going from the safetensors files
    straight to the device (device_map), never through a full CPU copy. A diffusers build that refuses
    device_map for this pipeline loads on the CPU (the caller then moves it), with a warning."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.set_device(torch.device(device))
        try:
            return cls.from_pretrained(str(folder), device_map="cuda", **kwargs)
        except (ValueError, NotImplementedError, TypeError) as exc:
            log.warning("device_map load failed (%s); loading on the CPU, then moving", exc)
    return cls.from_pretrained(str(folder), **kwargs)


def dtype_kwargs(dtype) -> dict:
    """from_pretrained's dtype keyword: newer diffusers renamed `torch_dtype` to `dtype` (the old name
    warns)."""
    try:
        from diffusers.utils.deprecation_utils import _TORCH_DTYPE_DEPRECATION_MESSAGE  # noqa: F401
    except ImportError:
        return {"torch_dtype": dtype}
    return {"dtype": dtype}


def pipeline_shell(pipe):
    """A pipeline object sharing `pipe`'s networks, with its own scheduler and tokenizers: one per slot.

    Both hold per-call state: a scheduler its timesteps and step index, a fast tokenizer its padding and
    truncation settings on the Rust object (diffusers' encode_prompt switches them between calls), so two
    slots encoding prompts at once must not share one. They are small; the networks are shared."""
    own = {name: copy.deepcopy(component) for name, component in pipe.components.items()
           if name == "scheduler" or name.startswith("tokenizer")}
    shell = type(pipe).from_pipe(pipe, **own)
    shell.set_progress_bar_config(disable=True)
    return shell


def load_safety_checker(ctx: LoadContext, requested: str | None,
                        dtype) -> tuple[SafetyChecker | None, str | None]:
    """Load the NSFW checker from MODEL_DIR on SAFETY_CHECKER_DEVICE, or the runner's device.

    As upstream, an unusable device falls back to the runner's (contract 2) and absent weights leave nsfw
    always false; both are notes on `ctx`, never a failed load.

    Args:
        ctx: the load context (MODEL_DIR, the runner's device, notes).
        requested: SAFETY_CHECKER_DEVICE, or None. dtype: the pipeline's torch dtype (used on a GPU only).
    Returns:
        (the checker, None), or (None, why it is absent: for /runner/info).
    """
    device = ctx.device
    safety_device = (requested or device).strip().lower()  # upstream lower-cases it
    if not usable_device(safety_device):
        ctx.note(f"SAFETY_CHECKER_DEVICE={requested!r} is not a usable device: using {device}")
        safety_device = device
    if not safety_device.startswith("cuda"):
        import torch

        dtype = torch.float32
    try:
        return SafetyChecker.load(ctx.settings.model_dir, safety_device, dtype), None
    except ModelNotFound as exc:
        absent = (f"safety checker weights absent in MODEL_DIR ({exc}); nsfw is always false. "
                  "Run `runner-sdk download` for this model to fetch them.")
        ctx.note(absent)
        return None, absent


def usable_device(name: str) -> bool:
    """Whether torch can put a model on `name`: "cpu", or a CUDA device this process sees."""
    import torch

    try:
        parsed = torch.device(name)
    except (RuntimeError, ValueError):
        return False
    if parsed.type == "cuda":
        return torch.cuda.is_available() and (parsed.index or 0) < torch.cuda.device_count()
    return parsed.type == "cpu"
