"""Tiny synthetic Stable Video Diffusion checkpoints (built once per session) served on 127.0.0.1."""

from __future__ import annotations

import pytest
from image_to_image.img_support import serve

XT = "stabilityai/stable-video-diffusion-img2vid-xt"
BASE = "stabilityai/stable-video-diffusion-img2vid"
ENV = {"I2V_WARMUP_SIZE": "32x32", "I2V_MAX_PIXELS": str(64 * 64)}


@pytest.fixture(scope="session")
def i2v_models(tmp_path_factory):
    from runners.image_to_video.synth import synthesize

    root = tmp_path_factory.mktemp("i2v-models")
    synthesize(XT, root, "tiny")
    synthesize(BASE, root, "tiny", safety_checker=False)
    return root


@pytest.fixture(scope="session")
def svd_xt(i2v_models):
    with serve("image-to-video", XT, i2v_models, env=ENV) as srv:
        yield srv
