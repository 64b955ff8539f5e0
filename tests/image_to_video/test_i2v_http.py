"""`POST /image-to-video` against a real server with tiny synthetic SVD checkpoints, bodies written as
go-livepeer writes them (contract 3.9, 6.1, 6.2, 12 items 44-45)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from image_to_image.img_support import error_msg, info, png_bytes, png_image, post, serve
from image_to_video.conftest import BASE, ENV, XT

from runner_sdk import routes
from runner_sdk.testing import check_conformance, check_response

PATH = "/image-to-video"


def _frames(r) -> list[dict]:
    assert r.status_code == 200, r.text
    assert not check_response(r, routes.IMAGE_TO_VIDEO)
    outer = r.json()["frames"]
    assert len(outer) == 1  # go-livepeer: "unexpected number of image-to-video outputs" otherwise
    return outer[0]


def test_conformance_battery(svd_xt):
    problems = check_conformance(svd_xt.url, routes.IMAGE_TO_VIDEO,
                                 data={"height": "32", "width": "32", "num_inference_steps": "1"},
                                 files={"image": ("image", png_bytes(16, 16), "application/octet-stream")})
    assert not problems, "\n".join(problems)


def test_frames_are_pngs_of_the_requested_size_with_one_seed(svd_xt):
    fields = {"model_id": XT, "height": 32, "width": 48, "seed": 5, "num_inference_steps": 2, "fps": 7,
              "motion_bucket_id": 100, "noise_aug_strength": 0.02}
    frames = _frames(post(svd_xt, PATH, fields, png_bytes(40, 30, fmt="WEBP")))
    assert len(frames) == 25
    assert {f["seed"] for f in frames} == {5} and all(isinstance(f["nsfw"], bool) for f in frames)
    assert all(png_image(f["url"]).size == (48, 32) for f in frames)
    again = _frames(post(svd_xt, PATH, fields, png_bytes(40, 30, fmt="WEBP")))
    assert [f["url"] for f in again] == [f["url"] for f in frames]  # same seed, same video


def test_safety_check_false_is_a_200_with_nsfw_false(svd_xt):
    fields = {"height": 32, "width": 32, "seed": 1, "num_inference_steps": 1, "safety_check": False}
    frames = _frames(post(svd_xt, PATH, fields, png_bytes(16, 16)))
    assert not any(f["nsfw"] for f in frames)  # upstream: a text/plain 500 (Q33)


@pytest.mark.parametrize(
    ("fields", "image", "status", "message"),
    [
        ({"height": 577}, png_bytes(16, 16), 400, "`height` and `width` have to be divisible by 8 but are 577 and 1024."),
        ({"height": 32, "width": 36}, png_bytes(16, 16), 400,
         "`height` and `width` have to be divisible by 8 but are 32 and 36."),
        ({}, png_bytes(16, 16), 400, None),  # the 576x1024 default is over I2V_MAX_PIXELS here
        ({"height": 32, "width": 32}, b"\x89PNG\r\n\x1a\n garbage", 400, "Unsupported or malformed image."),
        ({"height": 32, "width": 32, "model_id": "other/model"}, png_bytes(16, 16), 400,
         f"pipeline configured with {XT} but called with other/model."),
        ({"height": 32, "width": 32}, None, 422, None),
        ({"height": 32, "width": 32, "seed": ""}, png_bytes(16, 16), 422, None),
        ({"height": 32, "width": 32, "safety_check": "maybe"}, png_bytes(16, 16), 422, None),
    ],
)
def test_bad_input_is_a_json_4xx(svd_xt, fields, image, status, message):
    r = post(svd_xt, PATH, fields, image)
    assert r.status_code == status, r.text
    assert not check_response(r, routes.IMAGE_TO_VIDEO)
    if status == 400:
        msg = error_msg(r)
        assert message is None or msg == message
    assert info(svd_xt)["in_flight"] == 0


def test_base_checkpoint_gives_14_frames(i2v_models):
    with serve("image-to-video", BASE, i2v_models, env=ENV) as srv:
        frames = _frames(post(srv, PATH, {"height": 32, "width": 32, "seed": 2, "num_inference_steps": 1},
                              png_bytes(16, 16)))
        assert len(frames) == 14 and info(srv)["runner"]["num_frames"] == 14


def test_cancelled_request_frees_its_slot(svd_xt):
    def client() -> None:
        try:
            post(svd_xt, PATH, {"height": 64, "width": 64, "seed": 1, "num_inference_steps": 100}, png_bytes(16, 16),
                 timeout=1.5)
        except httpx.TimeoutException:
            pass

    thread = threading.Thread(target=client)
    thread.start()
    thread.join()
    deadline = time.monotonic() + 60
    while info(svd_xt)["in_flight"] != 0:
        assert time.monotonic() < deadline, "the slot was never freed"
        time.sleep(0.05)
    assert 0 < svd_xt.host.runner.last_steps_run < 100
    r = post(svd_xt, PATH, {"height": 32, "width": 32, "seed": 1, "num_inference_steps": 1}, png_bytes(16, 16))
    assert len(_frames(r)) == 25
