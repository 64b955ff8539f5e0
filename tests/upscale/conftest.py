"""A tiny synthetic x4 upscaler (built once per session) served on 127.0.0.1."""

from __future__ import annotations

import pytest
from image_to_image.img_support import serve

UPSCALER = "stabilityai/stable-diffusion-x4-upscaler"
# Tiles of 32 input pixels with 8 shared: a 64x48 input is cut into 6 tiles on the CPU in a fraction of a second.
ENV = {"UPSCALE_WARMUP_SIZE": "16", "UPSCALE_TILE_SIZE": "32", "UPSCALE_TILE_OVERLAP": "8",
       "UPSCALE_MAX_INPUT_PIXELS": str(96 * 96)}


@pytest.fixture(scope="session")
def upscale_models(tmp_path_factory):
    from runners.upscale.synth import synthesize

    root = tmp_path_factory.mktemp("upscale-models")
    synthesize(UPSCALER, root, "tiny")
    return root


@pytest.fixture(scope="session")
def upscaler(upscale_models):
    with serve("upscale", UPSCALER, upscale_models, env=ENV) as srv:
        yield srv
