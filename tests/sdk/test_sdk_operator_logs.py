"""What an operator sees: refusal reasons in the log, /health polls at DEBUG, a disconnect labelled as such in
/metrics, a load report whose phases add up to its total, /docs served without a CDN, and streaming requests
never refused for capacity."""

from __future__ import annotations

import asyncio
import logging
import threading

import httpx
import pytest
from fakes import FakeLLMRunner, runner

from runner_sdk.errors import InsufficientCapacity
from runner_sdk.host import RunnerHost
from runner_sdk.logs import HealthPollFilter
from runner_sdk.testing import serve, settings_for


def test_refusals_log_their_reason(caplog):
    slow = runner(steps=30, step_s=0.02)
    caplog.set_level(logging.INFO, logger="runner_sdk")
    with serve(slow, capacity=1, queue_size=0) as srv:
        t = threading.Thread(target=httpx.post, args=(srv.url + "/text-to-image",),
                             kwargs={"json": {"prompt": "x", "width": 8, "height": 8}, "timeout": 30})
        t.start()
        slow.started.wait(10)
        r = httpx.post(srv.url + "/text-to-image", json={"prompt": "x", "width": 8, "height": 8})
        assert r.status_code == 500 and "insufficient capacity" in r.json()["detail"]["msg"]
        r = httpx.post(srv.url + "/text-to-image", json={"prompt": "x", "model_id": "other/model"})
        assert r.status_code == 400
        t.join()
    text = caplog.text
    assert "POST /text-to-image refused: 500 insufficient capacity: 1 running and 0 queued" in text
    assert "POST /text-to-image refused: 400 pipeline configured with test/model but called with other/model" in text


def _access_record(path: str) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                             ("127.0.0.1:5", "GET", path, "1.1", 200), None)


@pytest.mark.parametrize("level, kept", [(logging.INFO, False), (logging.DEBUG, True)])
def test_health_polls_are_debug_lines(level, kept):
    access = logging.getLogger("uvicorn.access")
    old = access.level
    access.setLevel(level)
    try:
        record = _access_record("/health")
        assert HealthPollFilter().filter(record) is kept
        assert record.levelname == "DEBUG"
        other = _access_record("/text-to-image")
        assert HealthPollFilter().filter(other) is True and other.levelname == "INFO"
    finally:
        access.setLevel(old)


def test_uvicorn_log_config_filters_the_access_log():
    from runner_sdk.logs import uvicorn_log_config

    config = uvicorn_log_config()  # what `serve` passes to uvicorn.run (not applied here: it is process-wide)
    assert config["handlers"]["access"]["filters"] == ["health_polls"]
    assert config["filters"]["health_polls"]["()"] is HealthPollFilter


def test_client_disconnect_has_its_own_metrics_label():
    slow = runner(steps=40, step_s=0.02)
    with serve(slow) as srv:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(srv.url + "/text-to-image", json={"prompt": "x", "width": 8, "height": 8}, timeout=0.3)
        for _ in range(100):
            metrics = httpx.get(srv.url + "/metrics").text
            if 'status="disconnected"' in metrics:
                break
            threading.Event().wait(0.02)
    assert 'runner_responses_total{route="/text-to-image",status="disconnected"} 1.0' in metrics
    assert 'status="500"' not in metrics


def test_load_report_phases_add_up_to_the_total():
    with serve(runner(load_s=0.05)) as srv:
        load = httpx.get(srv.url + "/runner/info").json()["load"]
        metrics = httpx.get(srv.url + "/metrics").text
    assert {"init", "read_weights", "warmup", "other"} <= set(load["phases_s"])
    assert abs(sum(load["phases_s"].values()) - load["total_s"]) < 0.001 * len(load["phases_s"])
    assert 'runner_load_phase_seconds{phase="other"}' in metrics


def test_docs_work_offline():
    with serve(runner()) as srv:
        html = httpx.get(srv.url + "/docs").text
        js = httpx.get(srv.url + "/docs-assets/swagger-ui-bundle.js")
        css = httpx.get(srv.url + "/docs-assets/swagger-ui.css")
    assert "/docs-assets/swagger-ui-bundle.js" in html and "/openapi.json" in html
    assert "cdn.jsdelivr.net" not in html and "://" not in html.split("<body>")[0].replace("http://", "")
    assert js.status_code == 200 and len(js.content) > 100_000 and "javascript" in js.headers["content-type"]
    assert css.status_code == 200 and "css" in css.headers["content-type"]


def test_streaming_requests_are_queued_never_refused_for_capacity():
    async def admit() -> None:
        host = RunnerHost(FakeLLMRunner, settings_for(FakeLLMRunner, capacity=1, queue_size=0))
        host.admit()
        with pytest.raises(InsufficientCapacity):
            host.admit()  # a JSON request: refused, the gateway retries elsewhere
        host.admit(stream=True)  # a stream: a refusal's body would be dropped, so it waits for a slot
        assert host.capacity.queued == 2

    asyncio.run(admit())


def test_streaming_request_past_the_queue_limit_is_served():
    slow = type("SlowLLM", (FakeLLMRunner,), {"step_s": 0.05})
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    with serve(slow, capacity=1, queue_size=0) as srv:
        results: list[httpx.Response] = []
        t = threading.Thread(target=lambda: results.append(
            httpx.post(srv.url + "/llm", json={**body, "stream": True}, timeout=30)))
        t.start()
        srv.wait_until({"OK"}, 10)
        second = httpx.post(srv.url + "/llm", json={**body, "stream": True}, timeout=30)
        t.join()
    assert results[0].status_code == 200 and second.status_code == 200
    assert second.text.endswith("data: [DONE]\n\n")
