"""NSFW flagging with CompVis/stable-diffusion-safety-checker (contract 8.1): it only flags, the images are
returned as generated. Weights come from MODEL_DIR (HF cache layout), never implicitly from the network
when HF_HUB_OFFLINE is set (Q24)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from runner_sdk.resolve import ModelNotFound, resolve_snapshot

from .models import CLIP_PROCESSOR_REPO, SAFETY_CHECKER_REPO

log = logging.getLogger("runner.text_to_image")


class SafetyChecker:
    """CompVis' checker with its CLIP processor, on one device: `flags` computes the NSFW booleans."""

    def __init__(self, model, processor, device: str, dtype):
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype

    @classmethod
    def load(cls, model_dir: Path, device: str, dtype) -> SafetyChecker:
        """Load the checker and its processor from MODEL_DIR onto `device` in `dtype` (a torch dtype).

        Raises:
            ModelNotFound: the weights are not in MODEL_DIR (and cannot be fetched).
        """
        from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
        from transformers import CLIPImageProcessor

        weights = resolve_snapshot(SAFETY_CHECKER_REPO, model_dir, ["*.json", "*.safetensors"])
        processor_dir = resolve_snapshot(CLIP_PROCESSOR_REPO, model_dir, ["preprocessor_config.json"])
        if not (processor_dir / "preprocessor_config.json").exists():
            raise ModelNotFound(f"{CLIP_PROCESSOR_REPO}/preprocessor_config.json is not in {model_dir}")
        import transformers

        major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
        dtype_kw = {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}  # renamed in 4.56
        model = StableDiffusionSafetyChecker.from_pretrained(str(weights), **dtype_kw).to(device).eval()
        processor = CLIPImageProcessor.from_pretrained(str(processor_dir))
        return cls(model, processor, device, dtype)

    def flags(self, images: list[np.ndarray]) -> list[bool]:
        """One NSFW boolean per image; `images` are (H, W, 3) uint8 RGB and are left untouched."""
        import torch

        pixels = self.processor(images=images, return_tensors="pt").pixel_values.to(self.device, self.dtype)
        # The checker blacks out flagged entries of `images` in place: hand it placeholders, never our images.
        placeholders = [np.zeros((1, 1, 3), dtype=np.float32) for _ in images]
        with torch.inference_mode():
            _, has_nsfw = self.model(images=placeholders, clip_input=pixels)
        return [bool(x) for x in has_nsfw]
