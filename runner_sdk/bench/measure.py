"""One measurement: start `runner-sdk serve` in a fresh process (so no peak leaks from the last one), time
its cold load to ready, then drive it over HTTP and read its own figures from /runner/info."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ..testing import free_port
from .workloads import Workload


@dataclass
class Measurement:
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

    def p(self, q: float) -> float | None:
        if not self.latencies_s:
            return None
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class ServerFailed(RuntimeError):
    pass


def start_server(pipeline: str, model_id: str, model_dir: Path, device: str, capacity: int,
                 extra_env: dict[str, str] | None = None, ready_timeout: float = 600.0):
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
            requests: int, warmup_requests: int = 1, progress=None,
            extra_env: dict[str, str] | None = None) -> Measurement:
    proc, url, cold = start_server(pipeline, model_id, model_dir, device, capacity, extra_env)
    try:
        info = httpx.get(url + "/runner/info").json()
        m = Measurement(capacity=capacity, cold_load_s=cold, load_phases_s=info["load"]["phases_s"],
                        warm_vram=info["vram"]["warm"], peak_vram=None, device=info["device"],
                        dtype=info["dtype"], notes=list(info.get("notes") or []))
        with httpx.Client() as client:
            for i in range(warmup_requests):
                _send(client, url, work, 10_000 + i)
        # `capacity` clients in parallel, `requests` requests in all: latency per request and throughput.
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
        wall = time.perf_counter() - t0
        for status, _, _ in results:
            m.statuses[status] = m.statuses.get(status, 0) + 1
        ok = [(s, units) for status, s, units in results if status == 200]
        m.latencies_s = [s for s, _ in ok]
        m.units_per_s = sum(u for _, u in ok) / wall if ok else None
        m.requests_per_s = len(ok) / wall if ok else None
        info: dict[str, Any] = httpx.get(url + "/runner/info").json()
        m.peak_vram = info["vram"]["peak"]
        return m
    finally:
        stop_server(proc)


def summary(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {"p50": statistics.median(ordered), "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]}
