"""Synthetic Stable Video Diffusion (`stabilityai/stable-video-diffusion-img2vid-xt`, `-xt-1-1`, `img2vid`):
the real architecture from its configs, random weights, in the HF cache layout, plus the safety checker.

The frame count is the UNet config's `num_frames`: 25 for the `-xt` ids, 14 for the base `img2vid`.
- scale="tiny": a 2-block spatio-temporal UNet of width 32/64, a 4-block temporal-decoder VAE (the real 8x
  factor; its norms need 32 channels), a CLIP vision tower of width 32 on
  224-pixel input (CPU tests).
- scale="full": the real shapes (UNet 1.52B, VAE 98M, CLIP ViT-H/14 image encoder 632M), random fp16 weights.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Literal

from runner_sdk.hfcache import install_snapshot
from runners.image_to_image.synth import write_model
from runners.text_to_image import synth as t2i_synth

Scale = Literal["tiny", "full"]

UNET_FULL = dict(
    sample_size=96, in_channels=8, out_channels=4, block_out_channels=[320, 640, 1280, 1280],
    down_block_types=["CrossAttnDownBlockSpatioTemporal"] * 3 + ["DownBlockSpatioTemporal"],
    up_block_types=["UpBlockSpatioTemporal"] + ["CrossAttnUpBlockSpatioTemporal"] * 3,
    addition_time_embed_dim=256, projection_class_embeddings_input_dim=768, layers_per_block=2,
    cross_attention_dim=1024, transformer_layers_per_block=1, num_attention_heads=[5, 10, 20, 20], num_frames=25,
)
UNET_TINY = dict(
    sample_size=8, in_channels=8, out_channels=4, block_out_channels=[32, 64],
    down_block_types=["CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"],
    up_block_types=["UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"],
    addition_time_embed_dim=8, projection_class_embeddings_input_dim=24, layers_per_block=1,
    cross_attention_dim=32, transformer_layers_per_block=1, num_attention_heads=[2, 4], num_frames=25,
)
VAE_FULL = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                block_out_channels=[128, 256, 512, 512], layers_per_block=2, latent_channels=4, sample_size=768,
                scaling_factor=0.18215, force_upcast=True)
VAE_TINY = dict(VAE_FULL, block_out_channels=[32, 32, 32, 32], layers_per_block=1, sample_size=64)
# laion CLIP ViT-H/14 vision tower with its 1024-wide projection.
VISION_FULL = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16,
                   image_size=224, patch_size=14, projection_dim=1024, hidden_act="gelu")
# SVD resizes its conditioning image to 224x224 whatever the encoder: the tiny tower keeps that input size.
VISION_TINY = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                   image_size=224, patch_size=32, projection_dim=32, hidden_act="gelu")
SCHEDULER = {"_class_name": "EulerDiscreteScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
             "beta_start": 0.00085, "clip_sample": False, "interpolation_type": "linear", "num_train_timesteps": 1000,
             "prediction_type": "v_prediction", "set_alpha_to_one": False, "sigma_max": 700.0, "sigma_min": 0.002,
             "skip_prk_steps": True, "steps_offset": 1, "timestep_spacing": "leading", "timestep_type": "continuous",
             "trained_betas": None, "use_karras_sigmas": True}


def frames_of(model_id: str) -> int:
    """The frame count a checkpoint generates: 14 for the base `img2vid`, 25 for `-xt` ones."""
    return 25 if "xt" in model_id.lower().rsplit("/", 1)[-1] else 14


def write_svd_repo(folder: Path, scale: Scale, num_frames: int, *, fp32: bool) -> None:
    """An SVD diffusers repository under `folder` (fp16 files; fp32 too when `fp32`)."""
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    folder.mkdir(parents=True, exist_ok=True)
    index = {"_class_name": "StableVideoDiffusionPipeline", "_diffusers_version": "0.24.0.dev0",
             "feature_extractor": ["transformers", "CLIPImageProcessor"],
             "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
             "scheduler": ["diffusers", "EulerDiscreteScheduler"],
             "unet": ["diffusers", "UNetSpatioTemporalConditionModel"],
             "vae": ["diffusers", "AutoencoderKLTemporalDecoder"]}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER, indent=2))
    full = scale == "full"
    CLIPImageProcessor(size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}).save_pretrained(
        str(folder / "feature_extractor"))
    unet = dict(UNET_FULL if full else UNET_TINY, num_frames=num_frames)
    vae = VAE_FULL if full else VAE_TINY
    vision = CLIPVisionConfig(**(VISION_FULL if full else VISION_TINY))
    write_model(folder / "unet", lambda: UNetSpatioTemporalConditionModel.from_config(unet), scale, fp32=fp32, seed=20)
    write_model(folder / "vae", lambda: AutoencoderKLTemporalDecoder.from_config(vae), scale, fp32=fp32, seed=21)
    write_model(folder / "image_encoder", lambda: CLIPVisionModelWithProjection(vision), scale, "model",
                fp32=fp32, seed=22)


def synthesize(model_id: str, model_dir: Path, scale: Scale = "tiny", safety_checker: bool = True) -> Path:
    """Write an SVD checkpoint for `model_id` (and the safety checker) into the HF cache under `model_dir`.

    Returns:
        The snapshot folder.
    """
    model_dir = Path(model_dir)
    if safety_checker:
        t2i_synth.write_safety_checker(model_dir, scale)
    with tempfile.TemporaryDirectory() as tmp:
        write_svd_repo(Path(tmp), scale, frames_of(model_id), fp32=scale == "tiny")
        return install_snapshot(Path(tmp), model_dir, model_id)


__all__ = ["synthesize", "write_svd_repo", "frames_of"]
