"""One measurement: start `runner-sdk serve` in a fresh process (so no peak leaks from the last one), time
its cold load to ready, then drive it over HTTP and read its own figures from /runner/info."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ..stats import percentile
from ..testing import free_port
from .workloads import Workload


@dataclass
class Measurement:
    """One server process at one capacity: its cold load, VRAM (from /runner/info) and request figures."""

    capacity: int
    cold_load_s: float  # process start to ready, as the operator sees it
    load_phases_s: dict[str, float]
    warm_vram: dict[str, int | None] | None
    peak_vram: dict[str, int | None] | None
    latencies_s: list[float] = field(default_factory=list)
    units_per_s: float | None = None
    requests_per_s: float | None = None
    statuses: dict[int, int] = field(default_factory=dict)
    device: str | None = None
    dtype: str | None = None
    notes: list[str] = field(default_factory=list)
    repeats_units_per_s: list[float] = field(default_factory=list)

    @property
    def spread(self) -> float | None:
        """(max - min) / median of the throughput over the repeats; None with fewer than two."""
        runs = sorted(self.repeats_units_per_s)
        if len(runs) < 2 or not runs[len(runs) // 2]:
            return None
        return (runs[-1] - runs[0]) / runs[len(runs) // 2]

    def p(self, q: float) -> float | None:
        """The q-th latency percentile in seconds (0 <= q <= 100), None without a successful request."""
        return percentile(self.latencies_s, q) if self.latencies_s else None


class ServerFailed(RuntimeError):
    """The server under test exited, reported ERROR on /health, or was not ready in time."""


def start_server(pipeline: str, model_id: str, model_dir: Path, device: str, capacity: int,
                 extra_env: dict[str, str] | None = None, ready_timeout: float = 600.0):
    """Start `runner-sdk serve` on a free local port and wait for /health to say IDLE or OK.

    Returns:
        (the process, its base url, seconds from start to ready).

    Raises:
        ServerFailed: it exited, reported ERROR, or was not ready within `ready_timeout` seconds.
    """
    port = free_port()
    env = {**os.environ, "PIPELINE": pipeline, "MODEL_ID": model_id, "MODEL_DIR": str(model_dir),
           "HF_HUB_OFFLINE": "1", **(extra_env or {})}
    env.pop("AUTH_TOKEN", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner_sdk", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--device", device, "--capacity", str(capacity), "--queue-size", str(capacity * 2)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_timeout
    while True:
        if proc.poll() is not None:
            raise ServerFailed(f"server exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
        try:
            status = httpx.get(url + "/health", timeout=5).json()
            if status["status"] in ("IDLE", "OK"):
                return proc, url, time.perf_counter() - t0
            if status["status"] == "ERROR":
                stop_server(proc)
                raise ServerFailed(f"runner ERROR: {status.get('error')}")
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            stop_server(proc)
            raise ServerFailed(f"not ready within {ready_timeout:.0f} s")
        time.sleep(0.05)


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL after 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _send(client: httpx.Client, url: str, work: Workload, i: int) -> tuple[int, float, float]:
    t0 = time.perf_counter()
    r = client.post(url + work.path, timeout=600, **work.request(i))
    elapsed = time.perf_counter() - t0
    units = work.units(r.json()) if r.status_code == 200 else 0.0
    return r.status_code, elapsed, units


def measure(pipeline: str, model_id: str, model_dir: Path, device: str, capacity: int, work: Workload,
            requests: int, warmup_requests: int = 2, progress=None,
            extra_env: dict[str, str] | None = None, repeats: int = 3) -> Measurement:
    """Start a fresh server, warm it up, then send `requests` requests from `capacity` clients at once, in
    `repeats` rounds (at least `capacity` requests each) whose throughputs give the spread.

    Args:
        pipeline, model_id, model_dir, device, capacity: the server under test.
        work: the requests.
        requests: requests in all (split over the rounds).
        warmup_requests: requests sent first and not counted.
        progress: called after each request.
        extra_env: env for the server (e.g. bounded tokens for synthetic weights).
        repeats: rounds measured separately for the spread.

    Returns:
        The measurement.

    Raises:
        ServerFailed: the server exited, reported ERROR or was not ready in time.
    """
    proc, url, cold = start_server(pipeline, model_id, model_dir, device, capacity, extra_env)
    try:
        return _measure_on(url, cold, capacity, work, requests, warmup_requests, progress, repeats)
    finally:
        stop_server(proc)


def measure_shared(pipeline: str, model_id: str, model_dir: Path, device: str, capacities: list[int],
                   work: Workload, requests: int, progress=None, extra_env: dict[str, str] | None = None,
                   repeats: int = 3) -> list[Measurement]:
    """One server at the highest capacity, driven by 1..N clients in turn: for CPU dry runs, where no VRAM
    peak can leak from one measurement into the next, at half the server starts.

    Args:
        pipeline, model_id, model_dir, device: the server under test.
        capacities: the client counts to measure (the server admits the highest).
        work: the requests.
        requests: requests per client at each capacity.
        progress: called after each request.
        extra_env: env for the server.
        repeats: rounds per capacity for the spread.

    Returns:
        One measurement per capacity, each noting the shared server.

    Raises:
        ServerFailed: the server exited, reported ERROR or was not ready in time.
    """
    top = max(capacities)
    proc, url, cold = start_server(pipeline, model_id, model_dir, device, top, extra_env)
    try:
        runs = []
        for i, c in enumerate(capacities):
            m = _measure_on(url, cold, c, work, requests * c, 2 if i == 0 else 1, progress, repeats)
            m.notes.append(f"CPU run: one server at capacity {top}, driven by {c} client(s)")
            runs.append(m)
        return runs
    finally:
        stop_server(proc)


def _measure_on(url: str, cold: float, capacity: int, work: Workload, requests: int, warmup_requests: int,
                progress, repeats: int) -> Measurement:
    info = httpx.get(url + "/runner/info").json()
    m = Measurement(capacity=capacity, cold_load_s=cold, load_phases_s=info["load"]["phases_s"],
                    warm_vram=info["vram"]["warm"], peak_vram=None, device=info["device"],
                    dtype=info["dtype"], notes=list(info.get("notes") or []))
    with httpx.Client() as client:
        for i in range(warmup_requests):
            _send(client, url, work, 10_000 + i)
    results, wall = [], 0.0
    rounds = max(1, min(repeats, requests // capacity))
    for r in range(rounds):
        n = requests // rounds + (1 if r < requests % rounds else 0)
        got, secs = _drive(url, work, capacity, n, progress)
        results += got
        wall += secs
        m.repeats_units_per_s.append(sum(u for st, _, u in got if st == 200) / secs if secs else 0.0)
    for status, _, _ in results:
        m.statuses[status] = m.statuses.get(status, 0) + 1
    ok = [(s, units) for status, s, units in results if status == 200]
    m.latencies_s = [s for s, _ in ok]
    m.units_per_s = sum(u for _, u in ok) / wall if ok else None
    m.requests_per_s = len(ok) / wall if ok else None
    m.peak_vram = httpx.get(url + "/runner/info").json()["vram"]["peak"]
    return m


def _drive(url: str, work: Workload, capacity: int, requests: int,
           progress=None) -> tuple[list[tuple[int, float, float]], float]:
    """`capacity` clients in parallel, `requests` requests in all: ((status, seconds, units) each, wall seconds)."""
    results: list[tuple[int, float, float]] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def client_loop() -> None:
        with httpx.Client() as client:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                out = _send(client, url, work, i)
                with lock:
                    results.append(out)
                if progress is not None:
                    progress()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client_loop) for _ in range(capacity)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - t0

