"""The runner's life in the server process: background load, health state, capacity, execution.

State machine (contract 3.1): LOADING -> ready (IDLE when nothing runs or waits, OK while serving) or
ERROR. `/health` never goes LOADING -> OK without an IDLE in between: if requests queued during the load
keep the runner busy, it reports LOADING until the first idle moment.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .capacity import Capacity
from .device import select_device
from .errors import RunnerError
from .measure import PeakVram, PhaseTimer, free_cuda_cache, nvml_used_bytes, vram_snapshot
from .metrics import Metrics
from .runner import LoadContext, Runner
from .settings import RunnerSettings

log = logging.getLogger("runner_sdk")


class RunnerHost:
    def __init__(self, runner_cls: type[Runner], settings: RunnerSettings):
        self.runner_cls = runner_cls
        self.settings = settings
        self.capacity = Capacity(settings.capacity, settings.queue_size)
        self.metrics = Metrics(settings.version, settings.pipeline, settings.model_id)
        # One thread per slot: a job never waits for a thread, and inference never runs on the event loop.
        self.executor = ThreadPoolExecutor(max_workers=settings.capacity, thread_name_prefix="job")
        self.runner: Runner | None = None
        self.device: str | None = None
        self.error: str | None = None
        self.loading = True
        self.idle_reached = False
        self.load_report: dict[str, Any] | None = None
        self.load_notes: list[str] = []
        self.warm_vram: dict[str, int | None] | None = None
        self.peak_vram: dict[str, int | None] | None = None
        self.last_peak_vram: dict[str, int | None] | None = None
        self._baseline_nvml: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None
        self.requests_served = 0

    # --- loading ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Begin loading in a background thread (the port is already bound, /health says LOADING)."""
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        threading.Thread(target=self._load, name="load", daemon=True).start()

    def _load(self) -> None:
        timer = PhaseTimer()
        s = self.settings
        try:
            with timer.phase("init"):  # importing torch and opening the device are part of a cold start
                self.device = select_device(s.device)
            self._baseline_nvml = nvml_used_bytes(self.device)
            runner = self.runner_cls(s, self.device)
            ctx = LoadContext(settings=s, device=self.device, timer=timer, notes=self.load_notes)
            log.info("loading %s %s on %s", s.pipeline, s.model_id, self.device)
            runner.setup(ctx)
            if s.warmup:
                with timer.phase("warmup"):
                    runner.warmup()
            self.warm_vram = vram_snapshot(self.device)
            if self.warm_vram is not None:  # what this process holds on the device, by NVML
                used = self.warm_vram.get("nvml_used")
                self.warm_vram["nvml_used_delta"] = (used - self._baseline_nvml if used is not None
                                                     and self._baseline_nvml is not None else None)
            self.load_report = {"phases_s": {k: round(v, 4) for k, v in timer.seconds.items()},
                                "total_s": round(timer.total(), 4)}
            for phase, seconds in timer.seconds.items():
                self.metrics.load_phase.labels(phase).set(seconds)
            self.metrics.load_phase.labels("total").set(timer.total())
            for kind, value in (self.warm_vram or {}).items():
                if value is not None:
                    self.metrics.warm_vram.labels(kind).set(value)
            self.runner = runner
            log.info("ready in %.2f s: %s", timer.total(), self.load_report["phases_s"])
        except BaseException as exc:  # noqa: BLE001 - any load failure is an ERROR state, never a crash loop
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("loading failed: %s", self.error)
            if self.device:
                free_cuda_cache(self.device)
        finally:
            self.loading = False
            assert self._loop is not None and self._ready is not None
            self._loop.call_soon_threadsafe(self._after_load)

    def _after_load(self) -> None:
        self._ready.set()
        self.metrics.state.set(1 if self.runner else 0)
        self._note_idle()

    def _note_idle(self) -> None:
        if self.runner is not None and self.capacity.in_flight == 0 and self.capacity.queued == 0:
            self.idle_reached = True

    @property
    def ready(self) -> bool:
        """Loaded (successfully or not) and on the event loop's side of the hand-over."""
        return self._ready is not None and self._ready.is_set()

    # --- health -----------------------------------------------------------------------------------
    def health_status(self) -> str:
        if self.error is not None:
            return "ERROR"
        if self.loading or self.runner is None:
            return "LOADING"
        self._note_idle()
        if not self.idle_reached:
            return "LOADING"
        return "IDLE" if self.capacity.in_flight == 0 and self.capacity.queued == 0 else "OK"

    # --- admission --------------------------------------------------------------------------------
    async def acquire(self) -> Runner:
        """Queue for a slot (after admit()): waits for the load if needed. Returns the loaded runner."""
        assert self._ready is not None
        try:
            if not self._ready.is_set():
                try:
                    await asyncio.wait_for(self._ready.wait(), self.settings.load_wait_s)
                except TimeoutError:
                    raise RunnerError(500, f"model still loading after {self.settings.load_wait_s:.0f} s") from None
            if self.runner is None:
                raise RunnerError(500, f"model failed to load: {self.error}")
        except BaseException:
            self.capacity.leave_queue()
            self._sync_gauges()
            raise
        await self.capacity.wait_slot()
        self._sync_gauges()
        return self.runner

    def release(self) -> None:
        self.capacity.release()
        self._sync_gauges()
        self._note_idle()

    def _sync_gauges(self) -> None:
        self.metrics.in_flight.set(self.capacity.in_flight)
        self.metrics.queued.set(self.capacity.queued)

    # --- execution --------------------------------------------------------------------------------
    def run_in_slot(self, fn, *args) -> asyncio.Future:
        """Run `fn(*args)` on a job thread; the slot is released when the thread is done with it."""
        assert self._loop is not None
        fut = self._loop.run_in_executor(self.executor, fn, *args)
        fut.add_done_callback(lambda _f: self.release())
        return fut

    def measured(self, fn, *args):
        """Call `fn` on a job thread, recording the device memory peak of the call."""
        with PeakVram(self.device or "cpu", self._baseline_nvml) as peak:
            result = fn(*args)
        self.record_peak(peak.result)
        return result

    def record_peak(self, peak: dict[str, int | None] | None) -> None:
        if peak is None:
            return
        self.last_peak_vram = peak
        merged = dict(self.peak_vram or {})
        for kind, value in peak.items():
            if value is not None and (merged.get(kind) is None or value > merged[kind]):
                merged[kind] = value
                self.metrics.peak_vram.labels(kind).set(value)
            merged.setdefault(kind, value)
        self.peak_vram = merged

    def on_oom(self) -> None:
        free_cuda_cache(self.device or "cpu")

    # --- reporting --------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        s = self.settings
        runner = self.runner
        return {
            "pipeline": s.pipeline,
            "model_id": s.model_id,
            "version": s.version,
            "status": self.health_status(),
            "error": self.error,
            "device": self.device,
            "dtype": runner.dtype if runner else None,
            "optimisations_requested": s.optimisations_requested(),
            "optimisations_applied": dict(runner.optimisations_applied) if runner else {},
            "notes": list(self.load_notes),
            "load": self.load_report,
            "vram": {"warm": self.warm_vram, "peak": self.peak_vram, "last_request_peak": self.last_peak_vram},
            "capacity": s.capacity,
            "queue_size": s.queue_size,
            "in_flight": self.capacity.in_flight,
            "queued": self.capacity.queued,
            "requests_served": self.requests_served,
            "runner": runner.info() if runner else {},
            "time": int(time.time()),
        }
