"""The SDK items of the contract's conformance checklist, against a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import re

import httpx
import pytest
from fakes import decode_png, png_size, runner

from runner_sdk.testing import RunningServer

JSON = "application/json"


def is_json(r: httpx.Response) -> bool:
    return JSON in r.headers.get("content-type", "")


def test_health_version_hardware_shapes(settings):
    with RunningServer(runner(), settings()) as srv:
        r = httpx.get(srv.url + "/health")
        assert r.status_code == 200 and is_json(r)
        assert r.json() == {"status": "IDLE"}
        v = httpx.get(srv.url + "/version")
        assert v.status_code == 200 and is_json(v)
        assert v.json()["pipeline"] == "text-to-image"
        assert v.json()["model_id"] == "ByteDance/SDXL-Lightning-4step"
        assert re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", v.json()["version"])
        for path, key in (("/hardware/info", "gpu_info"), ("/hardware/stats", "gpu_stats")):
            h = httpx.get(srv.url + path)
            assert h.status_code == 200 and is_json(h)
            body = h.json()
            assert body["pipeline"] == "text-to-image" and isinstance(body[key], dict)
            assert all(isinstance(k, str) and k.isdigit() for k in body[key])
        # ai-runner also answers trailing-slash twins
        assert httpx.get(srv.url + "/health/").json()["status"] == "IDLE"


def test_version_is_echoed_byte_for_byte(settings):
    odd_id = "meta-llama/llama-3.1-8B-Instruct"
    with RunningServer(runner(), settings(model_id=odd_id, version="1.2.3-rc.1")) as srv:
        assert httpx.get(srv.url + "/version").json() == {
            "pipeline": "text-to-image", "model_id": odd_id, "version": "1.2.3-rc.1"}


def test_metrics_has_version_gauge_and_counts(settings):
    with RunningServer(runner(), settings(version="0.14.1-lpsdk.9")) as srv:
        httpx.post(srv.url + "/text-to-image", json={"prompt": "x", "width": 8, "height": 8})
        httpx.post(srv.url + "/text-to-image", json={"prompt": ""})
        m = httpx.get(srv.url + "/metrics")
        assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
        text = m.text
        assert 'version{app="ai-runner",version="0.14.1-lpsdk.9"} 1.0' in text
        assert 'runner_responses_total{route="/text-to-image",status="200"} 1.0' in text
        assert 'runner_responses_total{route="/text-to-image",status="400"} 1.0' in text
        assert 'runner_load_phase_seconds{phase="total"}' in text
        assert "runner_request_duration_seconds_bucket" in text


def test_image_request_roundtrip_and_server_timing(settings):
    with RunningServer(runner(), settings()) as srv:
        r = httpx.post(srv.url + "/text-to-image",
                       json={"prompt": "a cat", "seed": 42, "num_images_per_prompt": 3, "width": 24, "height": 16,
                             "unknown_field": "ignored"})
        assert r.status_code == 200, r.text
        images = r.json()["images"]
        assert [im["seed"] for im in images] == [42, 43, 44]
        assert all(png_size(decode_png(im["url"])) == (24, 16) for im in images)
        assert all(isinstance(im["nsfw"], bool) for im in images)
        timing = r.headers["server-timing"]
        assert "queue;dur=" in timing and "denoise;dur=" in timing and "total;dur=" in timing


@pytest.mark.parametrize("auth_header, expect", [
    (None, 401), ("Basic dG9rOnRvaw==", 401), ("Bearer wrong", 401), ("Bearer", 401),
    ("Bearer s3cret", 200), ("bearer s3cret", 200),
])
def test_bearer_auth_on_generate_route(settings, auth_header, expect):
    with RunningServer(runner(), settings(auth_token="s3cret")) as srv:
        headers = {"Authorization": auth_header} if auth_header else {}
        r = httpx.post(srv.url + "/text-to-image", json={"prompt": "x", "width": 8, "height": 8}, headers=headers)
        assert r.status_code == expect and is_json(r)
        if expect == 401:
            assert r.headers["www-authenticate"] == "Bearer"
            assert r.json() == {"detail": {"msg": "Invalid bearer token."}}


def test_auth_checked_before_body(settings):
    # Q18: an empty prompt without a token is a 401, not the stock runner's 400.
    with RunningServer(runner(), settings(auth_token="s3cret")) as srv:
        r = httpx.post(srv.url + "/text-to-image", json={"prompt": ""})
        assert r.status_code == 401


def test_non_generate_routes_accept_any_token(settings, caplog):
    with RunningServer(runner(), settings(auth_token="s3cret")) as srv:
        for path in ("/health", "/version", "/hardware/info", "/hardware/stats", "/metrics", "/runner/info"):
            r = httpx.get(srv.url + path, headers={"Authorization": "Bearer wrong"})
            assert r.status_code == 200, path
        info = httpx.get(srv.url + "/runner/info").text
        assert "s3cret" not in info
    assert "s3cret" not in caplog.text


def test_auth_off_when_token_empty(settings):
    with RunningServer(runner(), settings(auth_token="")) as srv:
        r = httpx.post(srv.url + "/text-to-image", json={"prompt": "x", "width": 8, "height": 8})
        assert r.status_code == 200


def test_error_shapes_and_statuses(settings):
    with RunningServer(runner(), settings()) as srv:
        url = srv.url + "/text-to-image"
        # 422: FastAPI's list with loc/msg/type
        for body in ({}, {"prompt": "x", "seed": None}):
            r = httpx.post(url, json=body)
            assert r.status_code == 422 and is_json(r)
            detail = r.json()["detail"]
            assert isinstance(detail, list) and detail
            assert all({"loc", "msg", "type"} <= set(item) for item in detail)
            assert detail[0]["loc"][0] == "body"
        r = httpx.post(url, data={"prompt": "x"})  # a form body is not JSON
        assert r.status_code == 422 and isinstance(r.json()["detail"], list)
        r = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
        # 400 from the runner's check, as HTTPError
        r = httpx.post(url, json={"prompt": "x", "height": 577})
        assert r.status_code == 400 and isinstance(r.json()["detail"]["msg"], str)
        r = httpx.post(url, json={"prompt": "x", "model_id": "other/model"})
        assert r.status_code == 400 and "other/model" in r.json()["detail"]["msg"]
        # another Livepeer pipeline's path: JSON 500 naming the mix-up, never a 404 (Q20)
        r = httpx.post(srv.url + "/llm", json={"messages": []})
        assert r.status_code == 500 and r.json()["detail"]["msg"] == \
            "pipeline llm not served (serving text-to-image)"
        # a path go-livepeer never calls keeps FastAPI's 404, still JSON
        r = httpx.get(srv.url + "/nope")
        assert r.status_code == 404 and is_json(r)


@pytest.mark.parametrize("inject, status, msg", [
    ("crash", 500, "Text-to-image pipeline error."),
    ("oom", 500, "Out of memory error. Try reducing output image resolution."),
    ("runner-error", 400, "Error during model execution: bad."),
])
def test_failures_inside_predict_are_json_and_the_next_request_works(settings, inject, status, msg):
    cls = runner(inject=inject)
    with RunningServer(cls, settings()) as srv:
        r = httpx.post(srv.url + "/text-to-image", json={"prompt": "x", "width": 8, "height": 8})
        assert r.status_code == status and is_json(r)
        assert r.json() == {"detail": {"msg": msg}}
        cls.inject = None
        r = httpx.post(srv.url + "/text-to-image", json={"prompt": "x", "width": 8, "height": 8})
        assert r.status_code == 200
        info = httpx.get(srv.url + "/runner/info").json()
        assert info["in_flight"] == 0 and info["queued"] == 0


def test_runner_info_on_cpu(settings):
    with RunningServer(runner(load_s=0.05), settings()) as srv:
        httpx.post(srv.url + "/text-to-image", json={"prompt": "x", "width": 8, "height": 8})
        info = httpx.get(srv.url + "/runner/info").json()
        assert info["pipeline"] == "text-to-image" and info["device"] == "cpu" and info["dtype"] == "float32"
        assert info["vram"] == {"warm": None, "peak": None, "last_request_peak": None}  # null on CPU, not zero
        assert info["load"]["phases_s"]["read_weights"] >= 0.05
        assert {"init", "warmup"} <= set(info["load"]["phases_s"])
        assert info["load"]["total_s"] >= info["load"]["phases_s"]["read_weights"]
        assert info["optimisations_requested"] == {"SFAST": False, "DEEPCACHE": False}
        assert info["capacity"] == 1 and info["requests_served"] == 1
