"""Shared fixtures: tiny synthetic SDXL models (built once per session) and real servers on 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from text_to_image.t2i_support import BAD_LORA, GENERIC, LIGHTNING, LORA, REALVIS, TURBO, serve


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """One MODEL_DIR holding every repository the tests serve: the SDXL base (fp16 files only, as the
    Lightning download plan fetches it) and the Lightning UNets, RealVisXL, Turbo, a generic SDXL repo
    (fp32 and fp16 files), the safety checker, and a LoRA for the tiny UNet."""
    from diffusers import UNet2DConditionModel

    from runners.text_to_image.synth import SDXL_UNET_TINY, synthesize, write_lora

    root = tmp_path_factory.mktemp("t2i-models")
    base = synthesize(f"{LIGHTNING}-4step", root, "tiny")
    for model_id in (REALVIS, TURBO, GENERIC):
        synthesize(model_id, root, "tiny", safety_checker=False)
    write_lora(root, LORA, base)
    # A LoRA trained for a UNet of other widths: incompatible with every model here.
    other = tmp_path_factory.mktemp("other-base")
    (other / "unet").mkdir()
    UNet2DConditionModel.from_config(dict(SDXL_UNET_TINY, block_out_channels=[16, 32], attention_head_dim=[2, 2],
                                          norm_num_groups=4)).save_config(str(other / "unet"))
    write_lora(root, BAD_LORA, other)
    return root


@pytest.fixture(scope="session")
def model_dir_without_safety(model_dir, tmp_path_factory) -> Path:
    """Only the generic repository: no safety-checker weights."""
    root = tmp_path_factory.mktemp("t2i-nosafety")
    name = "models--" + GENERIC.replace("/", "--")
    os.symlink(model_dir / name, root / name)
    return root


@pytest.fixture(scope="session")
def lightning2(model_dir):
    """The 2-step Lightning server most request tests use (two denoising steps per image)."""
    with serve(f"{LIGHTNING}-2step", model_dir, env={"T2I_MAX_PIXELS": str(64 * 64 * 4)}) as srv:
        yield srv


@pytest.fixture(scope="session")
def generic(model_dir):
    with serve(GENERIC, model_dir) as srv:
        yield srv


