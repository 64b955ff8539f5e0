"""Synthetic `stabilityai/stable-diffusion-x4-upscaler` (any id): the real architecture from its configs,
random weights, in the HF cache layout, plus the safety checker.

- scale="tiny": a 2-block UNet of width 32/64 with the real 7-channel input (4 latent + 3 image channels) and
  class-embedded noise level; a 3-block VAE, so the output is 4x the input as with the real model.
- scale="full": the real shapes (UNet 473M, VAE 55M, OpenCLIP-H text tower 340M), random fp16 weights.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Literal

from runner_sdk.hfcache import install_snapshot
from runners.image_to_image.synth import text_config, write_model
from runners.text_to_image import synth as t2i_synth

Scale = Literal["tiny", "full"]

UNET_FULL = dict(
    sample_size=128, in_channels=7, out_channels=4, layers_per_block=2, block_out_channels=[256, 512, 512, 1024],
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    attention_head_dim=8, cross_attention_dim=1024, num_class_embeds=1000,
    only_cross_attention=[True, True, True, False], use_linear_projection=True, norm_num_groups=32,
)
UNET_TINY = dict(
    sample_size=16, in_channels=7, out_channels=4, layers_per_block=1, block_out_channels=[32, 64],
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"], up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"],
    attention_head_dim=4, cross_attention_dim=32, num_class_embeds=1000, only_cross_attention=[True, False],
    use_linear_projection=True, norm_num_groups=8,
)
VAE_FULL = dict(in_channels=3, out_channels=3, latent_channels=4, sample_size=256, layers_per_block=2,
                block_out_channels=[128, 256, 512], down_block_types=["DownEncoderBlock2D"] * 3,
                up_block_types=["UpDecoderBlock2D"] * 3, norm_num_groups=32, scaling_factor=0.08333)
VAE_TINY = dict(VAE_FULL, sample_size=64, layers_per_block=1, block_out_channels=[8, 8, 16], norm_num_groups=4)
SCHEDULER = {"_class_name": "DDIMScheduler", "beta_end": 0.02, "beta_schedule": "scaled_linear",
             "beta_start": 0.0001, "clip_sample": False, "num_train_timesteps": 1000,
             "prediction_type": "v_prediction", "set_alpha_to_one": False, "steps_offset": 1}
LOW_RES_SCHEDULER = {"_class_name": "DDPMScheduler", "beta_end": 0.02, "beta_schedule": "scaled_linear",
                     "beta_start": 0.0001, "clip_sample": False, "num_train_timesteps": 1000,
                     "variance_type": "fixed_small"}


def write_upscaler_repo(folder: Path, scale: Scale, *, fp32: bool) -> None:
    """The x4 upscaler's diffusers repository under `folder` (fp16 files; fp32 too when `fp32`)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    folder.mkdir(parents=True, exist_ok=True)
    index = {"_class_name": "StableDiffusionUpscalePipeline", "_diffusers_version": "0.31.0", "max_noise_level": 350,
             "low_res_scheduler": ["diffusers", "DDPMScheduler"], "scheduler": ["diffusers", "DDIMScheduler"],
             "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    for sub, config in (("scheduler", SCHEDULER), ("low_res_scheduler", LOW_RES_SCHEDULER)):
        (folder / sub).mkdir(exist_ok=True)
        (folder / sub / "scheduler_config.json").write_text(json.dumps(config, indent=2))
    t2i_synth.write_tokenizer(folder / "tokenizer", pad_token="!")
    unet, vae, te = (UNET_FULL, VAE_FULL, text_config("upscaler", "full")) if scale == "full" else \
        (UNET_TINY, VAE_TINY, text_config("upscaler", "tiny"))
    write_model(folder / "unet", lambda: UNet2DConditionModel.from_config(unet), scale, fp32=fp32, seed=10)
    write_model(folder / "vae", lambda: AutoencoderKL.from_config(vae), scale, fp32=fp32, seed=11)
    write_model(folder / "text_encoder", lambda: CLIPTextModel(te), scale, "model", fp32=fp32, seed=12)


def synthesize(model_id: str, model_dir: Path, scale: Scale = "tiny", safety_checker: bool = True) -> Path:
    """Write an x4 upscaler for `model_id` (and the safety checker) into the HF cache under `model_dir`.

    Returns:
        The snapshot folder.
    """
    model_dir = Path(model_dir)
    if safety_checker:
        t2i_synth.write_safety_checker(model_dir, scale)
    with tempfile.TemporaryDirectory() as tmp:
        write_upscaler_repo(Path(tmp), scale, fp32=scale == "tiny")
        return install_snapshot(Path(tmp), model_dir, model_id)


__all__ = ["synthesize", "write_upscaler_repo"]
