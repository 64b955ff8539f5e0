"""The VAE's two jobs outside the pipeline: its precision, set once at start-up, and latents -> pixels per
image, on the device (so only the uint8 image crosses to the CPU)."""

from __future__ import annotations

import copy
import threading
from typing import Any


def keep_vae_precision(pipe, device: str) -> str | None:
    """Set the VAE's dtype once, instead of diffusers casting it on every call.

    SDXL's VAE overflows in fp16 (its config says `force_upcast`); diffusers then casts it to fp32 and back
    around every decode, mutating a module the slots share. Instead it is kept in bf16 (fp32's range) where
    the GPU supports it, else fp32, and `force_upcast` is cleared.

    Args:
        pipe: a diffusers pipeline on `device` (one without a VAE is left alone).
        device: "cuda:N" or "cpu".
    Returns:
        A note for the operator naming the dtype kept, or None when nothing changed (no fp16 VAE that
        asks for upcasting).
    """
    import torch

    vae = getattr(pipe, "vae", None)
    if vae is None or vae.dtype != torch.float16 or not getattr(vae.config, "force_upcast", False):
        return None
    target = torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
    vae.to(dtype=target)
    vae.register_to_config(force_upcast=False)
    return f"VAE kept in {str(target).removeprefix('torch.')} (SDXL's VAE overflows in fp16)"


def decode_latents(pipe, latents, vae=None) -> Any:
    """Latents -> one image, as the SDXL pipeline's output step does (un-scaling, optional latent mean/std),
    with the VAE left in the precision set at start-up.

    Args:
        pipe: the pipeline whose `vae` decodes.
        latents: (1, C, H/8, W/8) tensor, as the pipeline returns with output_type="latent".
        vae: another VAE to decode with (the float32 copy, `float32_vae`); default `pipe.vae`.
    Returns:
        (3, H, W) tensor in -1..1 (`to_uint8` converts it on the device), in the VAE's dtype.
    """
    import torch

    vae = vae if vae is not None else pipe.vae
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
    return image[0]


class Float32Vae:
    """A float32 copy of a reduced-precision VAE, made on first need and shared (read-only) by the slots:
    a decode whose fp16/bf16 output is not finite runs again on it, leaving the shared VAE untouched."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._copy = None

    def get(self, vae):
        """The float32 copy of `vae` (made once; `vae` itself when it is already float32)."""
        import torch

        if vae.dtype == torch.float32:
            return vae
        with self._lock:
            if self._copy is None:
                self._copy = copy.deepcopy(vae).to(dtype=torch.float32)
            return self._copy


def to_uint8(image) -> Any:
    """One image -> (H, W, 3) uint8 numpy array.

    Args:
        image: a pipeline's "np" output, (H, W, 3) floats in 0..1; or a VAE output tensor, (3, H, W) in -1..1.
    """
    import numpy as np
    import torch

    if isinstance(image, np.ndarray):
        return (image * 255).round().clip(0, 255).astype(np.uint8)
    pixels = ((image.float() / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
    return pixels.permute(1, 2, 0).contiguous().cpu().numpy()
