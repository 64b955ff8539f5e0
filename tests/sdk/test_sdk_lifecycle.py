"""Health states, capacity and queueing, disconnects: the runner's behaviour under load, for real."""

from __future__ import annotations

import threading
import time

import httpx
from fakes import runner

from runner_sdk.testing import RunningServer

SMALL = {"prompt": "x", "width": 8, "height": 8}


def post_in_thread(url: str, body: dict, results: list, timeout: float = 60.0) -> threading.Thread:
    def go():
        try:
            results.append(httpx.post(url, json=body, timeout=timeout))
        except httpx.HTTPError as exc:
            results.append(exc)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.005)


def test_loading_then_idle_then_ok_while_serving(settings):
    cls = runner(load_s=0.6, steps=20, step_s=0.02)
    with RunningServer(cls, settings(), wait_ready=False) as srv:
        assert httpx.get(srv.url + "/health").json() == {"status": "LOADING"}
        assert srv.wait_until({"IDLE"}) == "IDLE"
        results: list = []
        t = post_in_thread(srv.url + "/text-to-image", SMALL, results)
        cls.started.wait(10)
        assert httpx.get(srv.url + "/health").json() == {"status": "OK"}
        t.join()
        assert results[0].status_code == 200
        assert httpx.get(srv.url + "/health").json() == {"status": "IDLE"}


def test_loading_to_error_names_the_reason(settings):
    cls = runner(load_s=0.2, fail_load="weights for model x not found in MODEL_DIR")
    with RunningServer(cls, settings(), wait_ready=False) as srv:
        assert srv.wait_until({"ERROR", "IDLE", "OK"}) == "ERROR"
        body = httpx.get(srv.url + "/health").json()
        assert body["status"] == "ERROR" and "not found in MODEL_DIR" in body["error"]
        r = httpx.post(srv.url + "/text-to-image", json=SMALL)
        assert r.status_code == 500 and "failed to load" in r.json()["detail"]["msg"]
        assert httpx.get(srv.url + "/runner/info").json()["status"] == "ERROR"


def test_request_during_loading_waits_and_health_never_skips_idle(settings):
    # A request queued while LOADING runs as soon as the model is ready. /health must never go LOADING -> OK
    # without an IDLE in between (contract 3.1), and never say IDLE while that job is in flight.
    cls = runner(load_s=0.5, steps=10, step_s=0.03)
    with RunningServer(cls, settings(), wait_ready=False) as srv:
        results: list = []
        t = post_in_thread(srv.url + "/text-to-image", SMALL, results)
        seen: list[tuple[str, bool]] = []
        with httpx.Client() as client:
            while t.is_alive() or not seen or seen[-1][0] != "IDLE":
                running = srv.host.capacity.in_flight > 0
                status = client.get(srv.url + "/health").json()["status"]
                running = running and srv.host.capacity.in_flight > 0  # in flight before and after the probe
                seen.append((status, running))
                time.sleep(0.005)
        t.join()
        assert results[0].status_code == 200
        statuses = [s for s, _ in seen]
        assert statuses[0] == "LOADING" and statuses[-1] == "IDLE"
        compact = [s for i, s in enumerate(statuses) if i == 0 or s != statuses[i - 1]]
        for a, b in zip(compact, compact[1:], strict=False):
            assert (a, b) != ("LOADING", "OK"), compact
        assert not any(s == "IDLE" and running for s, running in seen)


def test_capacity_plus_queue_accepted_next_refused(settings):
    cls = runner(steps=50, step_s=0.02)
    with RunningServer(cls, settings(capacity=2, queue_size=1)) as srv:
        results: list = []
        threads = [post_in_thread(srv.url + "/text-to-image", SMALL, results) for _ in range(3)]
        wait_for(lambda: srv.host.capacity.in_flight == 2 and srv.host.capacity.queued == 1)
        r = httpx.post(srv.url + "/text-to-image", json=SMALL)
        assert r.status_code == 500 and r.headers["content-type"].startswith("application/json")
        assert "insufficient capacity" in r.json()["detail"]["msg"]
        for t in threads:
            t.join()
        assert sorted(x.status_code for x in results) == [200, 200, 200]
        info = httpx.get(srv.url + "/runner/info").json()
        assert info["in_flight"] == 0 and info["queued"] == 0


def test_bad_request_is_a_400_even_when_every_slot_and_the_queue_are_full(settings):
    """A caller's error is decided before admission: never `insufficient capacity` (which sends the gateway
    retrying the same bad request at other orchestrators), and it never waits behind running jobs."""
    cls = runner(steps=100, step_s=0.02)
    with RunningServer(cls, settings(capacity=1, queue_size=0)) as srv:
        results: list = []
        busy = post_in_thread(srv.url + "/text-to-image", SMALL, results)
        wait_for(lambda: srv.host.capacity.in_flight == 1)
        bad = httpx.post(srv.url + "/text-to-image", json={**SMALL, "prompt": "   "})
        assert bad.status_code == 400 and bad.json() == {"detail": {"msg": "Prompt must be provided."}}
        assert srv.host.capacity.in_flight == 1  # answered while the one slot was still busy
        full = httpx.post(srv.url + "/text-to-image", json=SMALL)
        assert full.status_code == 500 and "insufficient capacity" in full.json()["detail"]["msg"]
        busy.join()
        assert [r.status_code for r in results] == [200]
        assert srv.host.capacity.in_flight == 0 and srv.host.capacity.queued == 0


def test_queued_client_disconnect_gives_its_place_back(settings):
    cls = runner(steps=100, step_s=0.02)
    with RunningServer(cls, settings(capacity=1, queue_size=1)) as srv:
        results: list = []
        first = post_in_thread(srv.url + "/text-to-image", SMALL, results)
        wait_for(lambda: srv.host.capacity.in_flight == 1)
        # A client that gives up while queued (timeout closes the connection).
        try:
            httpx.post(srv.url + "/text-to-image", json=SMALL, timeout=0.3)
        except httpx.TimeoutException:
            pass
        wait_for(lambda: srv.host.capacity.queued == 0, timeout=2.0)
        # Its queue place is free again: another request is accepted, not refused.
        second = post_in_thread(srv.url + "/text-to-image", SMALL, results)
        wait_for(lambda: srv.host.capacity.queued == 1)
        first.join()
        second.join()
        assert [r.status_code for r in results] == [200, 200]


def test_running_client_disconnect_stops_the_job_and_frees_the_slot(settings):
    cls = runner(steps=500, step_s=0.01)
    with RunningServer(cls, settings(capacity=1, queue_size=0)) as srv:
        try:
            httpx.post(srv.url + "/text-to-image", json=SMALL, timeout=0.4)
        except httpx.TimeoutException:
            pass
        wait_for(lambda: srv.host.capacity.in_flight == 0, timeout=2.0)
        assert 0 < cls.steps_run[-1] < 500  # stopped at a step boundary, long before the end
        r = httpx.post(srv.url + "/text-to-image", json=SMALL, timeout=30)
        assert r.status_code == 200
        assert httpx.get(srv.url + "/health").json()["status"] == "IDLE"


def test_health_answers_while_every_slot_is_busy(settings):
    # Each job holds its slot for ~2 s; /health must answer while they run (inference is off the event loop).
    cls = runner(steps=100, step_s=0.02)
    with RunningServer(cls, settings(capacity=2, queue_size=2)) as srv:
        results: list = []
        threads = [post_in_thread(srv.url + "/text-to-image", SMALL, results) for _ in range(4)]
        wait_for(lambda: srv.host.capacity.in_flight == 2 and srv.host.capacity.queued == 2)
        with httpx.Client() as client:
            for _ in range(20):
                for path in ("/health", "/version", "/hardware/info"):
                    r = client.get(srv.url + path, timeout=1.0)  # the contract's bound (7.2)
                    assert r.status_code == 200
        assert srv.host.capacity.in_flight == 2  # still busy: the probes did not wait for a job
        for t in threads:
            t.join()
        assert [r.status_code for r in results] == [200] * 4
