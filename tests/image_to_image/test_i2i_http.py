"""`POST /image-to-image` against a real server with tiny synthetic models, bodies written as go-livepeer
writes them (contract 3.8, 6.1, 6.2, 12 items 39-43)."""

from __future__ import annotations

import io
import threading
import time

import httpx
import numpy as np
import pytest
from image_to_image.conftest import GENERIC, LIGHTNING, PIX2PIX, SD_TURBO, TURBO
from image_to_image.img_support import error_msg, go_multipart, info, png_bytes, png_image, post, serve
from PIL import Image

from runner_sdk import routes
from runner_sdk.testing import check_conformance, check_response

PATH = "/image-to-image"


def test_conformance_battery(lightning):
    image = png_bytes(64, 64)
    problems = check_conformance(lightning.url, routes.IMAGE_TO_IMAGE, data={"prompt": "a"},
                                 files={"image": ("image", image, "application/octet-stream")})
    assert not problems, "\n".join(problems)


def test_go_livepeer_body_seeds_in_order_and_repeatable(lightning):
    fields = {"prompt": "", "model_id": LIGHTNING, "num_images_per_prompt": 3, "seed": 42, "strength": 0.5,
              "guidance_scale": 7.5, "safety_check": False}
    body, _ = go_multipart(fields, b"x")
    assert b'filename="image"\r\nContent-Type: application/octet-stream' in body and b"0.500000" in body
    image = png_bytes(64, 56, seed=1)
    first = post(lightning, PATH, fields, image)
    assert first.status_code == 200, first.text
    assert not check_response(first, routes.IMAGE_TO_IMAGE)
    images = first.json()["images"]
    assert [m["seed"] for m in images] == [42, 43, 44] and not any(m["nsfw"] for m in images)
    assert all(png_image(m["url"]).size == (64, 56) for m in images)  # the input's size, not 1024x1024 (Q34)
    again = post(lightning, PATH, fields, image).json()["images"]
    assert [m["url"] for m in again] == [m["url"] for m in images]


def _pixels(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.asarray(png_image(response.json()["images"][0]["url"]), dtype=np.int16)


def test_lightning_output_depends_on_input_and_strength(lightning):
    fields = {"prompt": "a", "model_id": LIGHTNING, "seed": 7, "strength": 0.5}
    black, white = (_solid(0), _solid(255))
    a = _pixels(post(lightning, PATH, fields, black))
    assert lightning.host.runner.last_steps_run == 1  # 2 steps x strength 0.5
    b = _pixels(post(lightning, PATH, fields, white))
    c = _pixels(post(lightning, PATH, {**fields, "strength": 1.0}, black))
    assert lightning.host.runner.last_steps_run == 2
    # Upstream's Lightning branch ignores the input and strength (Q34): these would be identical there.
    assert (a != b).any() and (a != c).any()
    assert np.array_equal(a, _pixels(post(lightning, PATH, fields, black)))


def _solid(value: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (value, value, value)).save(buf, format="PNG")
    return buf.getvalue()


def test_aspect_follows_input_rounded_to_8(lightning):
    r = post(lightning, PATH, {"prompt": "a", "seed": 1}, png_bytes(45, 30))
    assert png_image(r.json()["images"][0]["url"]).size == (40, 24)


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "GIF"])
def test_other_formats_decode_by_content(lightning, fmt):
    r = post(lightning, PATH, {"prompt": "a", "seed": 1}, png_bytes(32, 48, fmt=fmt))
    assert r.status_code == 200, r.text
    assert png_image(r.json()["images"][0]["url"]).size == (32, 48)


def test_exif_orientation_is_applied(lightning):
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: displayed as 32 wide, 48 high
    Image.new("RGB", (48, 32), (200, 10, 10)).save(buf, format="JPEG", exif=exif)
    r = post(lightning, PATH, {"prompt": "a", "seed": 1}, buf.getvalue())
    assert png_image(r.json()["images"][0]["url"]).size == (32, 48)


@pytest.mark.parametrize(
    ("fields", "image", "status", "message"),
    [
        ({}, png_bytes(16, 16), 422, None),  # prompt missing
        ({"prompt": "a"}, None, 422, None),  # image missing
        ({"prompt": "a", "seed": ""}, png_bytes(16, 16), 422, None),
        ({"prompt": "a", "safety_check": "maybe"}, png_bytes(16, 16), 422, None),
        ({"prompt": "a", "model_id": "other/model"}, png_bytes(16, 16), 400,
         f"pipeline configured with {LIGHTNING} but called with other/model."),
        ({"prompt": "a"}, b"not an image at all", 400, "Unsupported or malformed image."),
        ({"prompt": "a"}, png_bytes(16, 16)[:40], 400, "Unsupported or malformed image."),
        ({"prompt": "a", "strength": 1.5}, png_bytes(16, 16), 400, "strength"),
        ({"prompt": "a", "num_images_per_prompt": 0}, png_bytes(16, 16), 400,
         "num_images_per_prompt must be at least 1 but is 0."),
        ({"prompt": "a", "loras": "{not json"}, png_bytes(16, 16), 400, "Unable to parse '{not json' as JSON."),
        ({"prompt": "a"}, png_bytes(4, 16), 400, None),  # smaller than one latent pixel
        ({"prompt": "a"}, png_bytes(128, 128), 400, None),  # over T2I_MAX_PIXELS (three 64x64)
        ({"prompt": "a", "num_images_per_prompt": 4}, png_bytes(64, 64), 400, None),
    ],
)
def test_bad_input_is_a_json_4xx(lightning, fields, image, status, message):
    r = post(lightning, PATH, fields, image)
    assert r.status_code == status, r.text
    assert not check_response(r, routes.IMAGE_TO_IMAGE)
    if status == 400:
        msg = error_msg(r)
        assert message is None or msg == message or (message == "strength" and "strength" in msg)
    assert info(lightning)["in_flight"] == 0


@pytest.mark.parametrize("model_id", [TURBO, SD_TURBO, PIX2PIX, GENERIC])
def test_every_model_family_serves(i2i_models, model_id):
    with serve("image-to-image", model_id, i2i_models) as srv:
        fields = {"prompt": "make it blue", "model_id": model_id, "seed": 5, "num_inference_steps": 2,
                  "strength": 0.5, "image_guidance_scale": 1.5}
        r = post(srv, PATH, fields, png_bytes(40, 32))
        assert r.status_code == 200, r.text
        assert not check_response(r, routes.IMAGE_TO_IMAGE)
        assert png_image(r.json()["images"][0]["url"]).size == (40, 32)
        runner = srv.host.runner
        assert runner.last_call["guidance_scale"] == (0.0 if "turbo" in model_id else 7.5)
        assert type(runner.pipe).__name__ == {PIX2PIX: "StableDiffusionInstructPix2PixPipeline",
                                              SD_TURBO: "StableDiffusionImg2ImgPipeline"}.get(
            model_id, "StableDiffusionXLImg2ImgPipeline")


def test_cancelled_request_frees_its_slot(i2i_models):
    with serve("image-to-image", GENERIC, i2i_models) as srv:
        errors: list[BaseException] = []

        def client() -> None:
            try:
                post(srv, PATH, {"prompt": "long", "seed": 1, "strength": 1.0, "num_inference_steps": 200,
                                 "guidance_scale": 5.0}, png_bytes(256, 256), timeout=1.5)
            except httpx.TimeoutException:
                pass
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        thread = threading.Thread(target=client)
        thread.start()
        thread.join()
        assert not errors
        deadline = time.monotonic() + 30
        while info(srv)["in_flight"] != 0:
            assert time.monotonic() < deadline, "the slot was never freed"
            time.sleep(0.05)
        assert 0 < srv.host.runner.last_steps_run < 200
        r = post(srv, PATH, {"prompt": "a", "seed": 1, "num_inference_steps": 2}, png_bytes(32, 32))
        assert r.status_code == 200, r.text
