"""Sustained load on a served runner (`runner-sdk serve` in its own process, so its memory and signals are
its own): held at capacity + queue (+1 client, so load shedding happens too) for a few seconds, then
SIGTERM with requests in flight. The soak benchmark (benchmarks/soak/soak.py) runs the same load for
minutes."""

from __future__ import annotations

import asyncio
import signal
import threading
import time

import httpx
import pytest
from reliability.relkit import (
    AUTH,
    CAPACITY,
    QUEUE,
    TOKEN,
    require,
    target_params,
)

from benchmarks.soak.loadgen import run_load
from benchmarks.soak.targets import ServedProcess

LOAD_SECONDS = 2.5
# Every top-level model call (or fake step) sleeps this long: requests stay in flight long enough to queue
# behind each other and to be caught by the SIGTERM.
FORWARD_DELAY_S = "0.05"
# Contract 3.1: /health answers within go-livepeer's 5 s probe timeout, also while inference runs (two
# misses and a managed container is destroyed). A behaviour bound, not a speed figure: the soak reports the
# latency percentiles.
HEALTH_PROBE_TIMEOUT_S = 5.0
# Resident memory may move by allocator noise (glibc arenas of the job threads, torch's CPU allocator
# caching activation buffers, lazily imported modules) but must not grow with the request count. 16 MiB is
# ~3-7% of these processes' RSS and far below what keeping each request's input/output would cost over a run
# at CI size (hundreds of requests); the soak benchmark reports the same figure over minutes.
RSS_TOLERANCE = 16 * 2**20
SIGTERM_DEADLINE_S = 8.0  # go-livepeer's grace period before SIGKILL


@pytest.fixture(scope="module", params=target_params())
def served(request, model_dirs, tmp_path_factory):
    target = request.param
    require(target)
    model_dir = model_dirs(target) if target.real else tmp_path_factory.mktemp(f"empty-{target.name}")
    proc = ServedProcess(target, model_dir, capacity=CAPACITY, queue_size=QUEUE,
                         extra_env={"AUTH_TOKEN": TOKEN, "VERBOSE_LOGGING": "1",
                                    "REL_FORWARD_DELAY_S": FORWARD_DELAY_S})
    proc.start()
    yield proc
    proc.stop()


def test_load_at_capacity_plus_queue(served):
    target = served.target
    # Twice: the first run takes the allocators to their working set under this load (glibc arenas per job
    # thread, torch's and oneDNN's caches grow once); the second must then hold RSS flat, which a leak cannot.
    first = asyncio.run(run_load(served.url, target, LOAD_SECONDS, clients=CAPACITY + QUEUE + 1, headers=AUTH,
                                 rss=served.rss))
    assert not first.transport_errors and not first.problems, first.summary()
    report = asyncio.run(run_load(served.url, target, LOAD_SECONDS, clients=CAPACITY + QUEUE + 1, headers=AUTH,
                                  rss=served.rss))
    summary = report.summary()
    print(target.name, summary)
    assert not report.transport_errors, report.transport_errors[:5]
    assert set(report.health_statuses) <= {"OK", "IDLE"}, summary
    assert len(report.health) >= 20 and max(report.health) < HEALTH_PROBE_TIMEOUT_S, summary
    assert report.in_flight_end == 0 and report.queued_end == 0, summary
    assert report.rss_end - report.rss_start < RSS_TOLERANCE, summary
    assert not report.problems, report.problems[:5]
    assert set(report.statuses) <= {200, 500} and report.statuses[200] >= CAPACITY, summary  # 500: shed only



def test_sigterm_drains_in_flight_requests(served):
    target = served.target
    results: list[httpx.Response | Exception] = []

    def send(kwargs):
        try:
            results.append(httpx.post(served.url + target.route.path, headers=AUTH, timeout=30, **kwargs))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=send, args=(target.valid_request(),)) for _ in range(CAPACITY)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while True:  # both admitted (running or queued) before the signal
        info = httpx.get(served.url + "/runner/info").json()
        if info["in_flight"] + info["queued"] >= CAPACITY:
            break
        assert time.monotonic() < deadline and not results, ("requests never started", results)
        time.sleep(0.002)
    t0 = time.monotonic()
    served.proc.send_signal(signal.SIGTERM)
    served.proc.wait(timeout=SIGTERM_DEADLINE_S)
    exit_s = time.monotonic() - t0
    for t in threads:
        t.join(timeout=10)
    # uvicorn re-raises the signal once it has shut down gracefully, so -SIGTERM is a clean exit too.
    assert exit_s < SIGTERM_DEADLINE_S and served.proc.returncode in (0, -signal.SIGTERM)
    assert len(results) == CAPACITY
    assert all(isinstance(r, httpx.Response) and r.status_code == 200 for r in results), results
    log = served.log()
    assert "Waiting for" in log or "Shutting down" in log, log[-2000:]


def test_served_log_never_holds_the_token(served):
    """VERBOSE_LOGGING=1 logs the settings and every request: the bearer token is never among them."""
    log = served.log()
    assert "DEBUG" in log and len(log) > 1000
    assert TOKEN not in log
