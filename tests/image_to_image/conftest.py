"""Tiny synthetic image-to-image models (built once per session) and real servers on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest
from image_to_image.img_support import serve

LIGHTNING = "ByteDance/SDXL-Lightning-2step"
TURBO = "stabilityai/sdxl-turbo"
SD_TURBO = "stabilityai/sd-turbo"
PIX2PIX = "timbrooks/instruct-pix2pix"
GENERIC = "acme/sdxl-generic"


@pytest.fixture(scope="session")
def i2i_models(tmp_path_factory) -> Path:
    from runners.image_to_image.synth import synthesize

    root = tmp_path_factory.mktemp("i2i-models")
    synthesize(LIGHTNING, root, "tiny")
    for model_id in (TURBO, SD_TURBO, PIX2PIX, GENERIC):
        synthesize(model_id, root, "tiny", safety_checker=False)
    return root


@pytest.fixture(scope="session")
def lightning(i2i_models):
    with serve("image-to-image", LIGHTNING, i2i_models, env={"T2I_MAX_PIXELS": str(64 * 64 * 3)}) as srv:
        yield srv
