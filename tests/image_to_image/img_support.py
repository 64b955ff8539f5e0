"""Helpers for the image-route tests: request bodies written the way go-livepeer's multipart writers write
them (contract 6.1: the file part first, `application/octet-stream`, filename `image`; floats as Go's `%f`),
real servers on 127.0.0.1, and response checks. Shared by tests/image_to_image, upscale and image_to_video."""

from __future__ import annotations

import base64
import io
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from text_to_image.t2i_support import serve_runner

from runner_sdk.pipelines import PIPELINES, load_object

TEST_ENV = {"HF_HUB_OFFLINE": "1", "T2I_WARMUP_SIZE": "64x64"}


def go_value(value: object) -> str:
    """A scalar as go-livepeer writes it: floats with `%f`, booleans true/false, integers in decimal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:f}"
    return str(value)


def go_multipart(fields: dict[str, object], image: bytes | None, filename: str = "image") -> tuple[bytes, str]:
    """(body, content type) of a multipart form as `ai/worker/multipart.go` writes it: the `image` file part
    first (octet-stream), then each field as a text part."""
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    if image is not None:
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
                  "Content-Type: application/octet-stream\r\n\r\n".encode())
        out.write(image + b"\r\n")
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode())
        out.write(go_value(value).encode() + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def post(srv, path: str, fields: dict[str, object], image: bytes | None, timeout: float = 120,
         headers: dict[str, str] | None = None) -> httpx.Response:
    body, ctype = go_multipart(fields, image)
    return httpx.post(srv.url + path, content=body, headers={"Content-Type": ctype, **(headers or {})},
                      timeout=timeout)


def png_bytes(width: int, height: int, seed: int = 0, fmt: str = "PNG", **save) -> bytes:
    """A noisy RGB image of `width` x `height` in `fmt` (PNG, JPEG, WEBP, GIF)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **save)
    return buf.getvalue()


def png_image(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1], validate=True)))
    assert image.format == "PNG"
    image.load()
    return image


def error_msg(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json"), response.text
    detail = response.json()["detail"]
    assert isinstance(detail, dict), detail
    return detail["msg"]


def info(srv) -> dict:
    return httpx.get(srv.url + "/runner/info").json()


@contextmanager
def serve(pipeline: str, model_id: str, model_dir: Path, env: dict[str, str] | None = None, **settings):
    """A real server of `pipeline`'s reference runner for `model_id`; `env` holds runner options."""
    with serve_runner(load_object(PIPELINES[pipeline].runner), {**TEST_ENV, **(env or {})}, pipeline=pipeline,
                      model_id=model_id, model_dir=model_dir, device="cpu", **settings) as srv:
        yield srv
