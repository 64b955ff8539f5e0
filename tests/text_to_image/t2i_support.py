"""Helpers for the text-to-image tests: real servers on 127.0.0.1 and response checks."""

from __future__ import annotations

import base64
import io
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from PIL import Image

from runner_sdk.settings import RunnerSettings
from runner_sdk.testing import RunningServer

LIGHTNING = "ByteDance/SDXL-Lightning"
REALVIS = "SG161222/RealVisXL_V4.0_Lightning"
TURBO = "stabilityai/sdxl-turbo"
GENERIC = "acme/sdxl-generic"
LORA = "acme/tiny-lora"
BAD_LORA = "acme/lora-for-another-model"

# Small enough that a 64x64 image takes a fraction of a second on two cores.
TEST_ENV = {"HF_HUB_OFFLINE": "1", "T2I_WARMUP_SIZE": "64x64"}


@contextmanager
def serve(model_id: str, model_dir: Path, env: dict[str, str] | None = None, **settings):
    """A real server for `model_id`; `env` holds runner options (read when the runner is created)."""
    with serve_runner(_runner_class(), {**TEST_ENV, **(env or {})}, pipeline="text-to-image", model_id=model_id,
                      model_dir=model_dir, device="cpu", **settings) as srv:
        yield srv


@contextmanager
def serve_runner(runner_cls, env: dict[str, str], **settings):
    """A real server of `runner_cls` with `env` (SDK settings such as DEEPCACHE, and runner options) set
    while the settings are read and the runner starts.

    The runner reads its options once, at start-up: they are set only until it is ready, so a session-long
    server never leaks them into servers other tests start later. The hub stays offline throughout."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        options = pytest.MonkeyPatch()
        for key, value in env.items():
            options.setenv(key, value)
        server = RunningServer(runner_cls, RunnerSettings(**settings))
        try:
            srv = server.__enter__()
        finally:
            options.undo()
        try:
            yield srv
        finally:
            server.__exit__(None, None, None)


def _runner_class():
    from runners.text_to_image.runner import TextToImageRunner

    return TextToImageRunner


def generate(srv, timeout: float = 60, **body) -> httpx.Response:
    body.setdefault("width", 64)
    body.setdefault("height", 64)
    return httpx.post(srv.url + "/text-to-image", json=body, timeout=timeout)


def info(srv) -> dict:
    return httpx.get(srv.url + "/runner/info").json()


def png_image(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    data = base64.b64decode(url.split(",", 1)[1], validate=True)
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    image.load()
    return image


def error_msg(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert isinstance(detail, dict), detail
    return detail["msg"]
