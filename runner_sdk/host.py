"""The runner's life in the server process: background load, health, capacity, execution, reporting.

The port is bound at once and /health says LOADING while a background thread loads; the state machine is
`lifecycle.Lifecycle` (contract 3.1). Inference never runs on the event loop: one job thread per slot.
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
from .integrity import IntegrityCollector
from .lifecycle import Lifecycle, Phase
from .measure import PeakVram, PhaseTimer, free_cuda_cache, nvml_used_bytes, vram_snapshot
from .metrics import Metrics
from .runner import LoadContext, Runner
from .settings import RunnerSettings

log = logging.getLogger("runner_sdk")


class NotReady(str):
    """A `healthy()` reason that passes: the runner cannot serve now (e.g. the upstream server it forwards to
    is down) but may again. While `healthy()` returns one, /health says LOADING (go-livepeer takes the runner
    out of its pool; ERROR would destroy the container or stop the node) and /runner/info's `error` has the
    reason; once `healthy()` returns None it is IDLE again (through IDLE before OK, as after a load). Requests
    are not refused for it: the runner fails them itself (fast) or serves them if the server is back."""


class RunnerHost:
    """Owns one Runner: loads it, admits requests into its capacity slots, runs them, reports on it."""

    def __init__(self, runner_cls: type[Runner], settings: RunnerSettings, preflight_error: str | None = None):
        """Args:
            runner_cls: the Runner subclass. settings: the process settings.
            preflight_error: why the runner can never serve (`preflight`): /health says ERROR with it from
                the first answer and no load is attempted.
        """
        self.runner_cls = runner_cls
        self.preflight_error = preflight_error
        self.settings = settings
        self.capacity = Capacity(settings.capacity, settings.queue_size)
        self.metrics = Metrics(settings.version, settings.pipeline, settings.model_id)
        self.metrics.registry.register(IntegrityCollector(lambda: self.runner))  # non-finite outputs
        self.executor = ThreadPoolExecutor(max_workers=settings.capacity, thread_name_prefix="job")
        self.state = Lifecycle()
        self.runner: Runner | None = None
        self.device: str | None = None
        self.ctx: LoadContext | None = None
        self.load_report: dict[str, Any] | None = None
        self.warm_vram: dict[str, int | None] | None = None
        self.peak_vram: dict[str, int | None] | None = None
        self.last_peak_vram: dict[str, int | None] | None = None
        self._baseline_nvml: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Event | None = None
        self.requests_served = 0
        self.not_ready: str | None = None  # the runner's `NotReady` reason while it lasts

    @property
    def error(self) -> str | None:
        return self.state.error or self.not_ready

    # --- loading ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Begin loading in a background thread (the port is already bound, /health says LOADING)."""
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        if self.preflight_error is not None:
            self.state.fail(f"preflight: {self.preflight_error}")
            log.error("not loading: %s", self.state.error)
            self._after_load()
            return
        threading.Thread(target=self._load, name="load", daemon=True).start()

    def _load(self) -> None:
        timer = PhaseTimer()
        s = self.settings
        runner = None
        try:
            with timer.phase("init"):  # importing torch and opening the device are part of a cold start
                self.device = select_device(s.device)
            self._baseline_nvml = nvml_used_bytes(self.device)
            runner = self.runner_cls(s, self.device)
            self.ctx = ctx = LoadContext(settings=s, device=self.device, timer=timer)
            log.info("loading %s %s on %s", s.pipeline, s.model_id, self.device)
            runner.setup(ctx)
            if s.warmup:
                with timer.phase("warmup"):
                    runner.warmup()
            self._record_load(timer)
            self.runner = runner
            log.info("ready in %.2f s: %s", timer.total(), self.load_report["phases_s"])
        except BaseException as exc:  # noqa: BLE001 - any load failure is an ERROR state, never a crash loop
            self.state.fail(f"{type(exc).__name__}: {exc}")
            log.exception("loading failed: %s", self.state.error)
            if runner is not None:  # what setup started (an engine process, a poller) goes with it
                self._close(runner)
            if self.device:
                free_cuda_cache(self.device)
        finally:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._after_load)

    def stop(self) -> None:
        """At server shutdown: no new jobs, then the runner's `close()` (engines, pollers, child processes)."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.runner is not None:
            self._close(self.runner)

    @staticmethod
    def _close(runner: Runner) -> None:
        try:
            runner.close()
        except Exception:  # noqa: BLE001 - shutting down anyway; say what failed
            log.exception("closing the runner failed")

    def _record_load(self, timer: PhaseTimer) -> None:
        """Cold load by phase and warm VRAM, into the load report and /metrics."""
        self.warm_vram = vram_snapshot(self.device or "cpu")
        if self.warm_vram is not None:  # what this process holds on the device, by NVML
            used = self.warm_vram.get("nvml_used")
            self.warm_vram["nvml_used_delta"] = (used - self._baseline_nvml if used is not None
                                                 and self._baseline_nvml is not None else None)
        total = timer.total()
        phases = dict(timer.seconds)
        # "other": the load's time outside every named phase (building the runner, imports, logging), so the
        # phases add up to the total (overlapping phases can only make it 0).
        phases["other"] = max(0.0, total - sum(phases.values()))
        self.load_report = {"phases_s": {k: round(v, 4) for k, v in phases.items()}, "total_s": round(total, 4)}
        for phase, seconds in phases.items():
            self.metrics.load_phase.labels(phase).set(seconds)
        self.metrics.load_phase.labels("total").set(total)
        for kind, value in (self.warm_vram or {}).items():
            if value is not None:
                self.metrics.warm_vram.labels(kind).set(value)

    def _after_load(self) -> None:
        if self.runner is not None:
            self.state.loaded()
        self._ready.set()
        self.metrics.state.set(1 if self.runner else 0)
        self._note_idle()

    def _busy(self) -> bool:
        return self.capacity.in_flight > 0 or self.capacity.queued > 0

    def _note_idle(self) -> None:
        self.state.note_busy(self._busy())

    @property
    def ready(self) -> bool:
        """Loaded (successfully or not) and on the event loop's side of the hand-over."""
        return self._ready is not None and self._ready.is_set()

    # --- health -----------------------------------------------------------------------------------
    def health_status(self) -> str:
        """LOADING, IDLE, OK or ERROR; asks a ready runner's `healthy()` hook first (a `NotReady` reason is
        LOADING while it lasts, any other reason ERROR for good)."""
        if self.state.phase is Phase.READY and self.runner is not None:
            reason = self.runner.healthy()
            if isinstance(reason, NotReady):
                if self.not_ready != reason:
                    log.warning("runner not ready: %s", reason)
                self.not_ready = str(reason)
                self.state.idle_reached = False  # back through IDLE, never LOADING -> OK
                self.metrics.state.set(0)
                return "LOADING"
            if self.not_ready is not None and reason is None:
                log.info("runner ready again (was: %s)", self.not_ready)
                self.not_ready = None
                self.metrics.state.set(1)
            if reason is not None:
                log.error("runner unhealthy: %s", reason)
                self.state.fail(reason)
                self.metrics.state.set(0)
        return self.state.status(self._busy())

    # --- admission --------------------------------------------------------------------------------
    def serving_runner(self) -> Runner | None:
        """The runner once loaded and healthy, else None (still loading, or failed)."""
        if not self.ready or self.health_status() == "ERROR":
            return None
        return self.runner

    def admit(self, stream: bool = False) -> None:
        """Take a queue place for a request, or refuse it with `insufficient capacity`.

        A streaming request is never refused for capacity: go-livepeer drops the body of a non-200 answer to
        a streaming /llm request, so the gateway would suspend the orchestrator instead of retrying elsewhere
        (docs/deploy.md). It waits for a slot past RUNNER_QUEUE_SIZE; go-livepeer's own capacity count bounds
        how many arrive.

        Args:
            stream: the request asks for Server-Sent Events.
        Raises:
            InsufficientCapacity: a non-streaming request finds every slot and queue place taken.
        """
        cap = self.capacity
        if stream and cap.in_flight + cap.queued >= cap.slots + cap.queue_size:
            log.info("streaming request queued past the queue limit (%d running, %d queued)", cap.in_flight,
                     cap.queued)
            cap.queued += 1
        else:
            cap.admit()
        self.sync_gauges()

    async def acquire(self) -> Runner:
        """Queue for a slot (after `capacity.admit()`), waiting for the load if needed.

        Returns:
            The loaded runner; the caller owns a slot and must `release()` it.
        Raises:
            RunnerError: 500 when the load takes longer than RUNNER_LOAD_WAIT_S or failed.
        """
        assert self._ready is not None
        try:
            if not self._ready.is_set():
                try:
                    await asyncio.wait_for(self._ready.wait(), self.settings.load_wait_s)
                except TimeoutError:
                    raise RunnerError(500, f"model still loading after {self.settings.load_wait_s:.0f} s") from None
            if self.runner is None:
                raise RunnerError(500, f"model failed to load: {self.state.error}")
            if self.health_status() == "ERROR":
                raise RunnerError(500, f"runner unhealthy: {self.state.error}")
        except BaseException:
            self.capacity.leave_queue()
            self.sync_gauges()
            raise
        await self.capacity.wait_slot()
        self.sync_gauges()
        return self.runner

    def release(self) -> None:
        self.capacity.release()
        self.sync_gauges()
        self._note_idle()

    def sync_gauges(self) -> None:
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
        self._record_peak(peak.result)
        return result

    def _record_peak(self, peak: dict[str, int | None] | None) -> None:
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
        """/runner/info: identity, state, what was loaded and how, VRAM, capacity and counters."""
        s, runner, ctx = self.settings, self.runner, self.ctx
        return {
            "pipeline": s.pipeline,
            "model_id": s.model_id,
            "version": s.version,
            "status": self.health_status(),
            "error": self.error,
            "device": self.device,
            "dtype": ctx.dtype if ctx and runner else None,
            "optimisations_requested": s.optimisations_requested(),
            "optimisations_applied": dict(ctx.applied) if ctx and runner else {},
            "notes": list(ctx.notes) if ctx else [],
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
