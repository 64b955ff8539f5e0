"""/image-to-text over a real server: BLIP (tiny, random weights) behind go-livepeer-shaped multipart bodies."""

from __future__ import annotations

import threading
import time

import httpx

from runner_sdk import routes
from runner_sdk.conformance import check_response
from runner_sdk.testing import check_conformance, serve
from runners.image_to_text.testimages import png

ROUTE = routes.IMAGE_TO_TEXT
MODEL_ID = "Salesforce/blip-image-captioning-large"


def test_i2t_caption_decodes_into_the_go_type(i2t_server, post_image):
    r = post_image(i2t_server, png())
    assert r.status_code == 200, r.text
    assert not check_response(r, ROUTE)
    assert set(r.json()) == {"text"} and r.json()["text"].strip()
    assert "caption" in r.headers["server-timing"]


def test_i2t_prompt_is_continued(i2t_server, post_image):
    r = post_image(i2t_server, png(), prompt="a photo of", model_id=MODEL_ID)
    assert r.status_code == 200, r.text
    assert r.json()["text"].startswith("a photo of")


def test_i2t_formats_and_sizes(i2t_server, post_image):
    from io import BytesIO

    from PIL import Image

    for fmt in ("JPEG", "GIF", "WEBP"):
        out = BytesIO()
        Image.new("RGB", (33, 17), (10, 200, 10)).save(out, format=fmt)
        r = post_image(i2t_server, out.getvalue())
        assert r.status_code == 200, (fmt, r.text)
    assert post_image(i2t_server, png(900, 40)).status_code == 200


def test_i2t_caller_errors(i2t_server, post_image):
    bad = post_image(i2t_server, b"\x89PNG\r\n\x1a\nnot really")
    assert bad.status_code == 400 and bad.json()["detail"]["msg"] == "Unsupported or malformed image."
    other = post_image(i2t_server, png(), model_id="Salesforce/blip-image-captioning-base")
    assert other.status_code == 400
    assert other.json()["detail"]["msg"] == (f"pipeline configured with {MODEL_ID} but called with "
                                             "Salesforce/blip-image-captioning-base")  # no period on this route
    missing = httpx.post(i2t_server.url + "/image-to-text", data={"prompt": "x"})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "image"]
    long = post_image(i2t_server, png(), prompt=" ".join(["photo"] * 100))
    assert long.status_code == 400 and "at most 64" in long.json()["detail"]["msg"]
    for r in (bad, other, long):
        assert not check_response(r, ROUTE)


def test_i2t_file_size_limit_is_413_just_past_50_mib(i2t_server, post_image):
    image = png()
    r = post_image(i2t_server, image + b"\0" * (52_428_801 - len(image)))
    assert r.status_code == 413 and r.json() == {"detail": {"msg": "File size exceeds limit"}}
    exact = post_image(i2t_server, image + b"\0" * (52_428_800 - len(image)))  # trailing bytes after IEND
    assert exact.status_code == 200, exact.text


def test_i2t_load_report(i2t_server):
    info = httpx.get(i2t_server.url + "/runner/info").json()
    text = str(info)
    assert "warmup" in text and "float32" in text and "batching" in text


def test_i2t_conformance(i2t_server, post_image):
    problems = check_conformance(i2t_server.url, ROUTE, data={"prompt": "a photo of"},
                                 files={"image": ("image", png(), "application/octet-stream")})
    assert not problems, "\n".join(problems)


def test_i2t_waiting_requests_are_batched(i2t_server, post_image, monkeypatch):
    runner = i2t_server.host.runner
    generate = runner.batcher._run

    def slow(items, jobs):  # a tiny model is too fast for requests to overlap: make each call take a while
        time.sleep(0.3)
        return generate(items, jobs)

    monkeypatch.setattr(runner.batcher, "_run", slow)
    before = runner.batcher.info()
    results: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda i=i: results.append(post_image(i2t_server, png(40 + i))))
               for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200] * 6
    after = runner.batcher.info()
    assert after["requests"] - before["requests"] == 6
    assert after["batches"] - before["batches"] < 6  # at least one call served two waiting requests
    info = httpx.get(i2t_server.url + "/runner/info").json()
    assert info["runner"]["batching"]["largest_batch"] >= 2


def test_i2t_base_model_and_auth(blip_model_dir, monkeypatch, post_image, tiny_blip):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with serve(tiny_blip, model_id="Salesforce/blip-image-captioning-base", model_dir=blip_model_dir,
               auth_token="tok") as srv:
        assert post_image(srv, png(), auth="tok").status_code == 200
        r = post_image(srv, png(), auth="nope")
        assert r.status_code == 401 and r.json() == {"detail": {"msg": "Invalid bearer token"}}
