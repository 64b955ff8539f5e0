"""Synthetic image-to-image models: the real architectures from configs, random weights, HF cache layout.

SDXL ids (Lightning, RealVisXL, sdxl-turbo, any other id) are the text-to-image runner's synthetic SDXL
repositories (`runners.text_to_image.synth`): image-to-image loads the same weights. Stable Diffusion 1.x/2.x
ids (`stabilityai/sd-turbo`, `runwayml/stable-diffusion-v1-5`, `prompthero/openjourney-v4`) and
`timbrooks/instruct-pix2pix` (SD 1.5 with an 8-channel UNet input) are written here. The helpers (`write_model`,
`text_config`, `SD_VAE_*`) also build the upscaler's and SVD's repositories.

- scale="tiny": tiny widths, the real 8x VAE factor (CPU tests).
- scale="full": the real shapes (SD 1.5 UNet 860M, SD 2.1 UNet 866M, CLIP-L 123M, OpenCLIP-H 340M),
  random fp16 weights drawn without materialising an fp32 model, for GPU benchmarks.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from runner_sdk.hfcache import install_snapshot
from runners.text_to_image import synth as t2i_synth

from .models import PIX2PIX_REPO, SD_FAMILY

Scale = Literal["tiny", "full"]

SD1_UNET_FULL = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=[320, 640, 1280, 1280],
    down_block_types=["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    up_block_types=["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    attention_head_dim=8, cross_attention_dim=768, norm_num_groups=32,
)
SD2_UNET_FULL = dict(SD1_UNET_FULL, attention_head_dim=[5, 10, 20, 20], cross_attention_dim=1024,
                     use_linear_projection=True)
SD_UNET_TINY = dict(
    sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=[32, 64],
    down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"], up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"],
    attention_head_dim=4, cross_attention_dim=32, norm_num_groups=8,
)
SD_VAE_FULL = dict(t2i_synth.SDXL_VAE_FULL, scaling_factor=0.18215, sample_size=512, force_upcast=True)
SD_VAE_TINY = dict(t2i_synth.SDXL_VAE_TINY, scaling_factor=0.18215)
# openai/clip-vit-large-patch14 (SD 1.x) and OpenCLIP ViT-H/14 (SD 2.x, the x4 upscaler) text towers.
OPENCLIP_H_FULL = dict(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
                       num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu", projection_dim=512)

SD_SCHEDULER = {**t2i_synth.SCHEDULER, "_class_name": "PNDMScheduler"}
SD2_SCHEDULER = {**t2i_synth.SCHEDULER, "_class_name": "EulerDiscreteScheduler", "timestep_spacing": "trailing"}


def text_config(family: str, scale: Scale):
    """The CLIP text tower of `family` ("sd1": CLIP-L; "sd2"/"upscaler": OpenCLIP-H) at `scale`."""
    from transformers import CLIPTextConfig

    if scale == "tiny":
        return CLIPTextConfig(**t2i_synth.CLIP_TINY, **t2i_synth.CLIP_IDS)
    full = t2i_synth.CLIP_L_FULL if family in ("sd1", "pix2pix") else OPENCLIP_H_FULL
    return CLIPTextConfig(**full, **t2i_synth.CLIP_IDS)


def write_model(target: Path, build: Callable, scale: Scale, stem: str = "diffusion_pytorch_model", *,
                fp16: bool = True, fp32: bool = False, seed: int = 0) -> None:
    """Write one component (its config and weights) under `target`.

    Args:
        target: the component's folder. build: makes the model (called under `init_empty_weights` at full
            scale, so no memory is used before the random fp16 tensors are drawn).
        scale: "tiny" or "full". stem: the weights' file stem ("model" for transformers components).
        fp16, fp32: which files to write (`<stem>.fp16.safetensors`, `<stem>.safetensors`). seed: the draw.
    """
    import torch

    target.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    if scale == "full":
        from accelerate import init_empty_weights

        with init_empty_weights():
            model = build()
        device = "cuda" if torch.cuda.is_available() else "cpu"
        half = t2i_synth._random_state_dict(model, torch.float16, device, seed)
        full = None
    else:
        model = build()
        full = {k: v.contiguous() for k, v in model.state_dict().items()}
        half = t2i_synth._to_half(full)
    t2i_synth._write_config(model, target)
    if fp16:
        t2i_synth._save(half, target / f"{stem}.fp16.safetensors")
    if fp32:
        t2i_synth._save(full if full is not None else {k: v.float() for k, v in half.items()},
                        target / f"{stem}.safetensors")


def write_sd_repo(folder: Path, family: str, scale: Scale, *, fp32: bool, seed: int = 0) -> None:
    """A Stable Diffusion 1.x/2.x (or InstructPix2Pix) diffusers repository under `folder`.

    Args:
        folder: the repository root. family: "sd1", "sd2" or "pix2pix". scale: "tiny" or "full".
        fp32: also write fp32 files (tiny scale; the fp16 variant is always written). seed: the draw.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    unet = dict(SD_UNET_TINY if scale == "tiny" else SD2_UNET_FULL if family == "sd2" else SD1_UNET_FULL)
    if family == "pix2pix":
        unet["in_channels"] = 8  # the noisy latents and the input image's latents
    pipeline = "StableDiffusionInstructPix2PixPipeline" if family == "pix2pix" else "StableDiffusionPipeline"
    scheduler = SD2_SCHEDULER if family == "sd2" else SD_SCHEDULER
    folder.mkdir(parents=True, exist_ok=True)
    index = {"_class_name": pipeline, "_diffusers_version": "0.31.0", "requires_safety_checker": False,
             "feature_extractor": [None, None], "safety_checker": [None, None],
             "scheduler": ["diffusers", scheduler["_class_name"]], "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"]}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(scheduler, indent=2))
    t2i_synth.write_tokenizer(folder / "tokenizer", pad_token="<|endoftext|>" if family != "sd2" else "!")
    te = text_config(family, scale)
    vae = SD_VAE_TINY if scale == "tiny" else SD_VAE_FULL
    write_model(folder / "unet", lambda: UNet2DConditionModel.from_config(unet), scale, fp32=fp32, seed=seed)
    write_model(folder / "vae", lambda: AutoencoderKL.from_config(vae), scale, fp32=fp32, seed=seed + 1)
    write_model(folder / "text_encoder", lambda: CLIPTextModel(te), scale, "model", fp32=fp32, seed=seed + 2)


def synthesize(model_id: str, model_dir: Path, scale: Scale = "tiny", safety_checker: bool = True) -> Path:
    """Write what the image-to-image runner needs for `model_id` into the HF cache under `model_dir`.

    Returns:
        The main snapshot folder (the SDXL base for Lightning ids).
    """
    model_dir = Path(model_dir)
    family = SD_FAMILY.get(model_id) or ("pix2pix" if PIX2PIX_REPO.lower() in model_id.lower() else None)
    if family is None:
        return t2i_synth.synthesize(model_id, model_dir, scale, safety_checker=safety_checker)
    if safety_checker:
        t2i_synth.write_safety_checker(model_dir, scale)
    with tempfile.TemporaryDirectory() as tmp:
        write_sd_repo(Path(tmp), family, scale, fp32=scale == "tiny")
        return install_snapshot(Path(tmp), model_dir, model_id)


__all__ = ["synthesize", "write_model", "write_sd_repo", "text_config"]
