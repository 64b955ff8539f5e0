"""`POST /upscale` against a real server with a tiny synthetic x4 upscaler, bodies written as go-livepeer
writes them (contract 3.10, 6.1, 6.2, 12 items 47-48), and the tiled path."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest
from image_to_image.img_support import error_msg, info, png_bytes, png_image, post
from upscale.conftest import UPSCALER

from runner_sdk import routes
from runner_sdk.testing import check_conformance, check_response
from runners.upscale.tiles import Blender, boxes, starts

PATH = "/upscale"


def test_conformance_battery(upscaler):
    problems = check_conformance(upscaler.url, routes.UPSCALE, data={"prompt": "", "num_inference_steps": "2"},
                                 files={"image": ("image", png_bytes(16, 16), "application/octet-stream")})
    assert not problems, "\n".join(problems)


def test_output_is_4x_and_seed_zero_is_echoed(upscaler):
    fields = {"prompt": "", "model_id": UPSCALER, "seed": 0, "num_inference_steps": 2, "safety_check": True}
    r = post(upscaler, PATH, fields, png_bytes(24, 16))
    assert r.status_code == 200, r.text
    assert not check_response(r, routes.UPSCALE)
    (image,) = r.json()["images"]
    assert image["seed"] == 0 and isinstance(image["nsfw"], bool)  # 0 is a seed, not "absent" (Q35)
    assert png_image(image["url"]).size == (96, 64)
    again = post(upscaler, PATH, fields, png_bytes(24, 16)).json()["images"][0]
    assert again["url"] == image["url"]


def test_large_input_is_tiled_and_seamless_in_size(upscaler):
    r = post(upscaler, PATH, {"prompt": "a", "seed": 3, "num_inference_steps": 1}, png_bytes(64, 48))
    assert r.status_code == 200, r.text
    assert png_image(r.json()["images"][0]["url"]).size == (256, 192)
    assert upscaler.host.runner.last_tiles == 6


def test_tiles_cover_the_image_and_blend_to_the_same_value():
    for length in (32, 33, 64, 100, 257):
        origins = starts(length, 32, 8)
        assert origins[0] == 0 and origins[-1] == max(0, length - 32)
        assert all(b - a <= 24 for a, b in zip(origins, origins[1:], strict=False))  # >= 8 overlap
    blender = Blender(64, 48, 8)
    for box in boxes(64, 48, 32, 8):
        h, w = (box[3] - box[1]) * 4, (box[2] - box[0]) * 4
        blender.add(box, np.full((h, w, 3), 0.5, dtype=np.float32))
    assert (blender.result() == 128).all()


@pytest.mark.parametrize(
    ("fields", "image", "status"),
    [
        ({}, png_bytes(16, 16), 422),  # prompt missing
        ({"prompt": ""}, None, 422),  # image missing
        ({"prompt": "", "seed": ""}, png_bytes(16, 16), 422),
        ({"prompt": "", "model_id": "other/model"}, png_bytes(16, 16), 400),
        ({"prompt": ""}, b"GIF89a but not really", 400),
        ({"prompt": ""}, png_bytes(128, 128), 400),  # over UPSCALE_MAX_INPUT_PIXELS
        ({"prompt": "", "num_inference_steps": 10_000}, png_bytes(16, 16), 400),
    ],
)
def test_bad_input_is_a_json_4xx(upscaler, fields, image, status):
    r = post(upscaler, PATH, fields, image)
    assert r.status_code == status, r.text
    assert not check_response(r, routes.UPSCALE)
    if status == 400:
        assert error_msg(r)
    assert info(upscaler)["in_flight"] == 0


def test_cancelled_request_frees_its_slot(upscaler):
    def client() -> None:
        try:
            post(upscaler, PATH, {"prompt": "long", "seed": 1, "num_inference_steps": 200}, png_bytes(64, 48),
                 timeout=1.0)
        except httpx.TimeoutException:
            pass

    thread = threading.Thread(target=client)
    thread.start()
    thread.join()
    deadline = time.monotonic() + 30
    while info(upscaler)["in_flight"] != 0:
        assert time.monotonic() < deadline, "the slot was never freed"
        time.sleep(0.05)
    assert 0 < upscaler.host.runner.last_steps_run < 6 * 200
    r = post(upscaler, PATH, {"prompt": "", "seed": 1, "num_inference_steps": 1}, png_bytes(16, 16))
    assert r.status_code == 200, r.text


def test_bearer_token_is_checked_and_unknown_parts_are_ignored(upscale_models):
    from image_to_image.img_support import serve
    from upscale.conftest import ENV

    with serve("upscale", UPSCALER, upscale_models, env=ENV, auth_token="s3cret") as srv:
        problems = check_conformance(srv.url, routes.UPSCALE, auth_token="s3cret",
                                     data={"prompt": "", "num_inference_steps": "1"},
                                     files={"image": ("image", png_bytes(16, 16), "application/octet-stream")})
        assert not problems, "\n".join(problems)
        r = post(srv, PATH, {"prompt": ""}, png_bytes(16, 16), headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert error_msg(r) == "Invalid bearer token."
        r = post(srv, PATH, {"prompt": "", "num_inference_steps": 1, "not_a_field": "x"}, png_bytes(16, 16),
                 headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200, r.text


@pytest.mark.parametrize(("size", "out"), [((18, 26), (64, 96)), ((70, 50), (272, 192)), ((3, 40), None)])
def test_sides_not_a_multiple_of_4_are_cropped_not_a_500(upscaler, size, out):
    """diffusers rounds such sizes down inside the VAE; the runner crops them first (single tile and tiled)."""
    r = post(upscaler, PATH, {"prompt": "a", "seed": 1, "num_inference_steps": 1}, png_bytes(*size))
    if out is None:
        assert r.status_code == 400 and "at least 4x4" in r.json()["detail"]["msg"]
        return
    assert r.status_code == 200, r.text
    assert png_image(r.json()["images"][0]["url"]).size == out
