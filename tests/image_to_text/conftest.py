"""One tiny synthetic BLIP (large) per session, served by a real uvicorn server with capacity 4."""

from __future__ import annotations

import httpx
import pytest

from runners.image_to_text.runner import BlipOptions, ImageToTextRunner
from runners.image_to_text.testimages import golivepeer_multipart

MODEL_ID = "Salesforce/blip-image-captioning-large"


class TinyBlipOptions(BlipOptions):
    blip_max_new_tokens: int = 6


class TinyBlipRunner(ImageToTextRunner):
    """The real runner with a short caption budget (random weights never stop on their own)."""

    Options = TinyBlipOptions


@pytest.fixture(scope="session")
def blip_model_dir(tmp_path_factory):
    from runners.image_to_text.synth import synthesize

    model_dir = tmp_path_factory.mktemp("i2t-models")
    synthesize(MODEL_ID, model_dir, "tiny")
    synthesize("Salesforce/blip-image-captioning-base", model_dir, "tiny")
    return model_dir


@pytest.fixture(scope="session")
def i2t_server(blip_model_dir):
    from runner_sdk.testing import serve

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        with serve(TinyBlipRunner, model_id=MODEL_ID, model_dir=blip_model_dir, capacity=4, queue_size=8) as srv:
            yield srv


def _post_image(srv, image: bytes, auth: str | None = None, **fields: str) -> httpx.Response:
    """POST /image-to-text the way go-livepeer does (file part first, octet-stream, filename `image`)."""
    body, headers = golivepeer_multipart(image, fields)
    if auth:
        headers["Authorization"] = f"Bearer {auth}"
    return httpx.post(srv.url + "/image-to-text", content=body, headers=headers, timeout=60)


@pytest.fixture(scope="session")
def post_image():
    return _post_image


@pytest.fixture(scope="session")
def tiny_blip():
    return TinyBlipRunner
