"""Synthetic SDXL-family models: the real architecture from a config, random weights, in the HF cache layout.

`synthesize(model_id, model_dir, scale)` writes every repository the runner reads for `model_id` (the SDXL
base plus the Lightning UNet file for SDXL-Lightning ids; the model repo itself otherwise; the safety checker
and its CLIP image processor), so serving it runs the same loading code as real weights, offline.

- scale="tiny": a few hundred thousand parameters per component (CPU tests, well under 10 MB per id).
  The VAE keeps SDXL's 8x down-sampling, so requested image sizes behave as with the real model.
- scale="full": the real SDXL shapes (UNet 2.567B, VAE 83.65M, CLIP-L 123M, OpenCLIP-bigG 695M parameters)
  with random fp16 weights, for GPU benchmarks only. Tensors are drawn on the GPU when there is one and
  written straight to safetensors (no fp32 model is ever materialised).

Real repositories hold fp32 and fp16 files for most components; the Lightning download plan fetches only
the base's `*.fp16.safetensors`, which this mirrors.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from runner_sdk.hfcache import install_snapshot

from .models import (
    CLIP_PROCESSOR_REPO,
    LIGHTNING_REPO,
    SAFETY_CHECKER_REPO,
    SDXL_BASE_REPO,
    ModelKind,
    classify,
)

Scale = Literal["tiny", "full"]

# --- configurations ---------------------------------------------------------------------------------

# stabilityai/stable-diffusion-xl-base-1.0 unet/config.json (the fields that shape the network).
SDXL_UNET_FULL = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=[320, 640, 1280],
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    attention_head_dim=[5, 10, 20], transformer_layers_per_block=[1, 2, 10], cross_attention_dim=2048,
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816, norm_num_groups=32,
)
# Same topology, tiny widths: two CLIP encoders of width 32 give cross_attention_dim 64, and the pooled
# projection (32) plus six 8-wide time ids gives 80.
SDXL_UNET_TINY = dict(
    sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
    block_out_channels=[32, 64],
    down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
    up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"],
    attention_head_dim=[2, 4], transformer_layers_per_block=[1, 1], cross_attention_dim=64,
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=80, norm_num_groups=8,
)

SDXL_VAE_FULL = dict(
    in_channels=3, out_channels=3, latent_channels=4, sample_size=1024, layers_per_block=2,
    block_out_channels=[128, 256, 512, 512],
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
    norm_num_groups=32, scaling_factor=0.13025, force_upcast=True,
)
SDXL_VAE_TINY = dict(
    in_channels=3, out_channels=3, latent_channels=4, sample_size=64, layers_per_block=1,
    block_out_channels=[8, 8, 16, 16],  # four blocks: the real 8x spatial factor
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
    norm_num_groups=4, scaling_factor=0.13025, force_upcast=True,
)

# openai/clip-vit-large-patch14 text tower, and laion OpenCLIP ViT-bigG/14 text tower (with projection).
CLIP_L_FULL = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                   num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
CLIP_G_FULL = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                   num_attention_heads=20, max_position_embeddings=77, hidden_act="gelu", projection_dim=1280)
CLIP_TINY = dict(vocab_size=600, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                 num_attention_heads=4, max_position_embeddings=77, hidden_act="gelu", projection_dim=32)
# The ids of our offline tokenizer's <|startoftext|> and <|endoftext|> (the real vocabulary's are 49406/49407):
# CLIPTextModel pools at the first eos id, so model and tokenizer must agree.
CLIP_IDS = dict(bos_token_id=514, eos_token_id=515, pad_token_id=515)

SCHEDULER = {
    "_class_name": "EulerDiscreteScheduler", "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "beta_start": 0.00085, "clip_sample": False, "interpolation_type": "linear", "num_train_timesteps": 1000,
    "prediction_type": "epsilon", "sample_max_value": 1.0, "set_alpha_to_one": False, "skip_prk_steps": True,
    "steps_offset": 1, "timestep_spacing": "leading", "trained_betas": None, "use_karras_sigmas": False,
}
# stabilityai/sdxl-turbo ships Euler ancestral with trailing spacing.
TURBO_SCHEDULER = {**SCHEDULER, "_class_name": "EulerAncestralDiscreteScheduler", "timestep_spacing": "trailing"}

PARAMETER_COUNTS_FULL = {  # the real SDXL components, for the 1% check
    "unet": 2_567_463_684, "vae": 83_653_863, "text_encoder": 123_060_480, "text_encoder_2": 694_659_840,
}


# --- builders ---------------------------------------------------------------------------------------


def unet_config(scale: Scale) -> dict:
    """The SDXL UNet's config at `scale` ("full": real SDXL shapes; "tiny": for tests), a fresh copy."""
    return dict(SDXL_UNET_FULL if scale == "full" else SDXL_UNET_TINY)


def vae_config(scale: Scale) -> dict:
    """The SDXL VAE's config at `scale`, a fresh copy."""
    return dict(SDXL_VAE_FULL if scale == "full" else SDXL_VAE_TINY)


def clip_configs(scale: Scale):
    """(CLIP-L, OpenCLIP-G) text-encoder configs at `scale` (both the same tiny one when "tiny")."""
    from transformers import CLIPTextConfig

    one, two = (CLIP_L_FULL, CLIP_G_FULL) if scale == "full" else (CLIP_TINY, CLIP_TINY)
    return CLIPTextConfig(**one, **CLIP_IDS), CLIPTextConfig(**two, **CLIP_IDS)


def empty_models(scale: Scale) -> dict:
    """The four SDXL networks on the meta device (no memory): for shapes and parameter counts."""
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    te_config, te2_config = clip_configs(scale)
    with init_empty_weights():
        return {
            "unet": UNet2DConditionModel.from_config(unet_config(scale)),
            "vae": AutoencoderKL.from_config(vae_config(scale)),
            "text_encoder": CLIPTextModel(te_config),
            "text_encoder_2": CLIPTextModelWithProjection(te2_config),
        }


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's byte-to-printable-character table (what CLIP's BPE vocabulary is spelled in)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def write_tokenizer(folder: Path, pad_token: str) -> None:
    """A CLIP BPE tokenizer with a byte-level vocabulary and no merges (every byte is a token): built
    offline, loads with CLIPTokenizer like the real one, ids below 516."""
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(_bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": 256 + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = 514
    vocab["<|endoftext|>"] = 515
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab))
        (Path(tmp) / "merges.txt").write_text("#version: 0.2\n")
        from transformers import CLIPTokenizer

        tok = CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"),
                            model_max_length=77, pad_token=pad_token)
        tok.save_pretrained(str(folder))
        shutil.copy(Path(tmp) / "vocab.json", folder / "vocab.json")
        shutil.copy(Path(tmp) / "merges.txt", folder / "merges.txt")


def _random_state_dict(model, dtype, device: str, generator_seed: int) -> dict:
    """Random tensors of `model`'s shapes (model may live on the meta device): norms get 1/0, the rest a
    small normal so activations stay finite in fp16."""
    import torch

    gen = torch.Generator(device=device).manual_seed(generator_seed)
    out = {}
    for name, tensor in model.state_dict().items():
        if "norm" in name and name.endswith("weight"):
            value = torch.ones(tensor.shape, dtype=dtype, device=device)
        elif name.endswith("bias"):
            value = torch.zeros(tensor.shape, dtype=dtype, device=device)
        else:
            value = (torch.randn(tensor.shape, generator=gen, dtype=torch.float32, device=device) * 0.02).to(dtype)
        out[name] = value.contiguous().cpu()
    return out


def _save(state: dict, path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"format": "pt"})


def _to_half(state: dict) -> dict:
    import torch

    return {k: v.to(torch.float16) if v.is_floating_point() else v for k, v in state.items()}


def write_sdxl_repo(folder: Path, scale: Scale, *, fp32: bool, fp16: bool, unet_weights: bool = True,
                    turbo: bool = False, seed: int = 0) -> dict:
    """An SDXL diffusers repository (model_index.json and its seven components) under `folder`.
    Returns the UNet's fp16 state dict (the Lightning file is built from it)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    index = {
        "_class_name": "StableDiffusionXLPipeline", "_diffusers_version": "0.19.0.dev0",
        "force_zeros_for_empty_prompt": True, "add_watermarker": None,
        "scheduler": ["diffusers", TURBO_SCHEDULER["_class_name"] if turbo else "EulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    (folder / "scheduler").mkdir(exist_ok=True)
    (folder / "scheduler" / "scheduler_config.json").write_text(
        json.dumps(TURBO_SCHEDULER if turbo else SCHEDULER, indent=2))
    write_tokenizer(folder / "tokenizer", pad_token="<|endoftext|>")
    write_tokenizer(folder / "tokenizer_2", pad_token="!")

    te_config, te2_config = clip_configs(scale)
    unet_fp16: dict = {}
    parts = [
        ("unet", "diffusion_pytorch_model", lambda: UNet2DConditionModel.from_config(unet_config(scale))),
        ("vae", "diffusion_pytorch_model", lambda: AutoencoderKL.from_config(vae_config(scale))),
        ("text_encoder", "model", None), ("text_encoder_2", "model", None),
    ]
    empty = empty_models(scale) if scale == "full" else None
    for sub, stem, build in parts:
        target = folder / sub
        target.mkdir(exist_ok=True)
        if scale == "full":
            model = empty[sub]  # type: ignore[index]
            device = "cuda" if torch.cuda.is_available() else "cpu"
            half = _random_state_dict(model, torch.float16, device, seed + len(sub))
            full = None
        else:
            if build is not None:
                model = build()
            else:
                from transformers import CLIPTextModel, CLIPTextModelWithProjection

                model = CLIPTextModel(te_config) if sub == "text_encoder" else CLIPTextModelWithProjection(te2_config)
            full = {k: v.contiguous() for k, v in model.state_dict().items()}
            half = _to_half(full)
        _write_config(model, target)
        if sub == "unet":
            unet_fp16 = half
            if not unet_weights:
                continue
        if fp16:
            _save(half, target / f"{stem}.fp16.safetensors")
        if fp32:
            _save(full if full is not None else {k: v.float() for k, v in half.items()}, target / f"{stem}.safetensors")
    return unet_fp16


def _write_config(model, target: Path) -> None:
    if hasattr(model, "save_config"):  # diffusers
        model.save_config(str(target))
    else:  # transformers
        model.config.save_pretrained(str(target))


def write_safety_checker(model_dir: Path, scale: Scale = "tiny") -> None:
    """CompVis/stable-diffusion-safety-checker (a CLIP vision tower plus concept embeddings) and the
    openai/clip-vit-base-patch32 image processor config. Full scale is the real ViT-L/14 tower (~304M
    parameters, 224x224 input), so GPU benchmarks pay the checker's real cost; tiny is 32x32."""
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    torch.manual_seed(1)
    if scale == "full":
        vision = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                      image_size=224, patch_size=14, projection_dim=768)
        text, projection, side = dict(CLIP_L_FULL, **CLIP_IDS), 768, 224
    else:
        vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                      image_size=32, patch_size=8, projection_dim=32)
        text, projection, side = dict(CLIP_TINY, **CLIP_IDS), 32, 32
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection)
    with tempfile.TemporaryDirectory() as tmp:
        checker = StableDiffusionSafetyChecker(config)
        if scale == "full":
            checker = checker.half()  # as the real repository's fp16 weights
        checker.save_pretrained(tmp)
        install_snapshot(Path(tmp), model_dir, SAFETY_CHECKER_REPO)
    with tempfile.TemporaryDirectory() as tmp:
        CLIPImageProcessor(size={"shortest_edge": side}, crop_size={"height": side, "width": side}).save_pretrained(tmp)
        install_snapshot(Path(tmp), model_dir, CLIP_PROCESSOR_REPO)


def write_lora(model_dir: Path, repo_id: str, base_snapshot: Path, rank: int = 4, seed: int = 3) -> Path:
    """A LoRA for the (tiny) UNet of `base_snapshot`, saved as diffusers' pytorch_lora_weights.safetensors."""
    import torch
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(base_snapshot / "unet")))
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with torch.no_grad():  # gaussian A and zero B would make a no-op LoRA: give B weights too
        for name, p in unet.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    with tempfile.TemporaryDirectory() as tmp:
        StableDiffusionXLPipeline.save_lora_weights(tmp, unet_lora_layers=get_peft_model_state_dict(unet))
        return install_snapshot(Path(tmp), model_dir, repo_id)


def synthesize(model_id: str, model_dir: Path, scale: Scale = "tiny", safety_checker: bool = True) -> Path:
    """Write what the runner needs for `model_id` into the HF cache under `model_dir`; return the main
    snapshot (the SDXL base for Lightning ids)."""
    model_dir = Path(model_dir)
    kind = classify(model_id)
    if safety_checker:
        write_safety_checker(model_dir, scale)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        if kind.lightning:
            # The base as the download plan fetches it: fp16 files only. Its own UNet weights are never read
            # (the Lightning file replaces them), so full scale skips writing them.
            unet_fp16 = write_sdxl_repo(repo, scale, fp32=False, fp16=True, unet_weights=scale == "tiny")
            main = install_snapshot(repo, model_dir, SDXL_BASE_REPO)
            lightning = Path(tmp) / "lightning"
            # Distinct weights per step count, as in the real repository.
            for steps in (2, 4, 8):
                if scale == "full" and steps != (kind.steps or 8):
                    continue  # 5 GB each: write only the one this id loads
                state = unet_fp16 if steps == (kind.steps or 8) else _perturbed(unet_fp16, steps)
                _save(state, lightning / f"sdxl_lightning_{steps}step_unet.safetensors")
            install_snapshot(lightning, model_dir, LIGHTNING_REPO)
            return main
        # Generic, RealVisXL and Turbo repositories: fp32 and fp16 files (full scale: fp16 only).
        write_sdxl_repo(repo, scale, fp32=scale == "tiny", fp16=True, turbo=kind.turbo)
        return install_snapshot(repo, model_dir, model_id)


def _perturbed(state: dict, seed: int) -> dict:
    import torch

    gen = torch.Generator().manual_seed(seed)
    return {k: (v.float() + torch.randn(v.shape, generator=gen) * 0.01).to(v.dtype) for k, v in state.items()}


__all__ = ["synthesize", "empty_models", "write_lora", "write_safety_checker", "PARAMETER_COUNTS_FULL", "ModelKind"]
