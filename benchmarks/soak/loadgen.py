"""An asyncio load generator (httpx.AsyncClient on 127.0.0.1) that holds a runner at capacity + queue
(plus one more client, so load shedding is exercised too) for a fixed time, while a second task polls
/health every 20 ms and times each answer. Used by the CI load test (seconds) and the soak (minutes)."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from runner_sdk.conformance import check
from runner_sdk.stats import percentile

from .targets import Target


@dataclass
class LoadReport:
    seconds: float = 0.0
    clients: int = 0
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # answers outside the contract
    transport_errors: list[str] = field(default_factory=list)
    health: list[float] = field(default_factory=list)  # seconds per /health answer
    health_statuses: Counter = field(default_factory=Counter)
    rss_start: int | None = None  # after the warm-up batch
    rss_end: int | None = None
    in_flight_end: int | None = None
    queued_end: int | None = None
    served_end: int | None = None

    def health_ms(self, q: float) -> float:
        """The `q`-quantile (0..1) of the /health answer times, in ms; NaN without any."""
        return 1000 * percentile(self.health, 100 * q) if self.health else float("nan")

    def summary(self) -> dict:
        return {
            "seconds": round(self.seconds, 1), "clients": self.clients, "requests": self.requests,
            "statuses": dict(sorted(self.statuses.items())), "problems": len(self.problems),
            "transport_errors": len(self.transport_errors), "health_polls": len(self.health),
            "health_p50_ms": round(self.health_ms(0.50), 2), "health_p99_ms": round(self.health_ms(0.99), 2),
            "health_max_ms": round(1000 * max(self.health), 2) if self.health else None,
            "health_mean_ms": round(1000 * statistics.fmean(self.health), 2) if self.health else None,
            "health_statuses": dict(self.health_statuses), "rss_start_mib": _mib(self.rss_start),
            "rss_end_mib": _mib(self.rss_end), "in_flight_end": self.in_flight_end, "queued_end": self.queued_end,
        }


def _mib(n: int | None) -> float | None:
    return None if n is None else round(n / 2**20, 1)


async def _one(client: httpx.AsyncClient, url: str, target: Target, n: int, report: LoadReport) -> None:
    kwargs = target.valid_request()
    if target.route.streams and n % 2:
        kwargs["json"] = {**kwargs["json"], "stream": True}  # alternate streamed and whole answers
    try:
        response = await client.post(url + target.route.path, **kwargs)
    except httpx.HTTPError as exc:
        report.transport_errors.append(f"{type(exc).__name__}: {exc}")
        return
    report.requests += 1
    report.statuses[response.status_code] += 1
    problems = check(response, target.route)
    shed = response.status_code == 500 and "insufficient capacity" in response.text
    if response.status_code != 200 and not shed and not problems:
        # Every request sent is valid: anything but a 200 or load shedding is a fault.
        problems = [f"valid request answered {response.status_code}: {response.text[:200]}"]
    report.problems.extend(problems)
    if shed:
        await asyncio.sleep(0.05)  # shed: back off a little, as a gateway's retry would, instead of spinning


async def _client_loop(client, url, target, stop: asyncio.Event, report: LoadReport, counter: list[int]) -> None:
    while not stop.is_set():
        counter[0] += 1
        await _one(client, url, target, counter[0], report)


def _health_loop(url: str, stop: threading.Event, report: LoadReport, period: float = 0.02) -> None:
    """On its own thread and connection, as go-livepeer's poller is: the load clients' event loop (parsing
    base64 images) never delays the timing of a health answer."""
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                response = client.get(url + "/health")
                report.health.append(time.perf_counter() - t0)
                report.health_statuses[response.json().get("status")] += 1
            except httpx.HTTPError as exc:
                report.transport_errors.append(f"/health {type(exc).__name__}: {exc}")
            stop.wait(period)


async def run_load(url: str, target: Target, seconds: float, clients: int, headers: dict[str, str] | None = None,
                   rss: Callable[[], int] | None = None, warmup_requests: int | None = None) -> LoadReport:
    """`clients` concurrent request loops for `seconds`, after a warm-up batch (not counted)."""
    report = LoadReport(clients=clients)
    limits = httpx.Limits(max_connections=clients + 2, max_keepalive_connections=clients + 2)
    async with httpx.AsyncClient(headers=headers, timeout=120, limits=limits) as client:
        warm = LoadReport()
        # Two rounds or more: later rounds run with the job threads, allocator pools and batch shapes the first
        # created, so the RSS baseline below is taken once start-up growth is over (a target whose activations
        # are large, SAM2's 1024x1024 image encoder, needs more rounds before malloc's high-water mark settles).
        for _ in range(max(2, target.warmup_rounds)):
            await asyncio.gather(*(_one(client, url, target, i, warm) for i in range(warmup_requests or clients)))
        report.problems.extend(warm.problems)
        report.transport_errors.extend(warm.transport_errors)
        report.rss_start = rss() if rss else None
        stop = asyncio.Event()
        counter = [0]
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(_client_loop(client, url, target, stop, report, counter))
                 for _ in range(clients)]
        health_stop = threading.Event()
        health = threading.Thread(target=_health_loop, args=(url, health_stop, report), daemon=True)
        health.start()
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*tasks)
        health_stop.set()
        health.join()
        report.seconds = time.perf_counter() - t0
        # Every answer is in; the counters must be back to zero (the slot is freed as the job thread ends).
        deadline = time.monotonic() + 2.0
        while True:
            info = (await client.get(url + "/runner/info")).json()
            if (info["in_flight"] == 0 and info["queued"] == 0) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        report.in_flight_end, report.queued_end = info["in_flight"], info["queued"]
        report.served_end = info.get("requests_served")
        report.rss_end = rss() if rss else None
    return report
