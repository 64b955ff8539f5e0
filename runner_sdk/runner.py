"""The interface a model author implements, in the spirit of LitServe's LitAPI and Cog's BaseRunner:
load once (`setup`), optionally `warmup`, then `check` and `predict` per request.

    class MyRunner(Runner):
        route = routes.TEXT_TO_IMAGE            # or your own Route
        def setup(self, ctx): ...               # load weights onto ctx.device, timing phases with ctx.phase()
        def predict(self, request, job): ...    # runs in a worker thread; call job.step() between steps
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from .errors import JobCancelled
from .measure import PhaseTimer
from .routes import Route
from .settings import RunnerSettings


@dataclass
class UploadedFile:
    """A file part of a multipart request, spooled to disk while it was received (never held whole)."""

    name: str
    filename: str | None
    content_type: str | None
    path: Path
    size: int

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()


class Job:
    """One request's life inside a worker thread: cancellation and a per-stage timing breakdown."""

    def __init__(self) -> None:
        self._cancelled = threading.Event()
        self.timings: dict[str, float] = {}
        self.steps = 0

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def step(self) -> None:
        """Call at each step boundary (a denoising step, a token, a batch): stops a cancelled job there."""
        self.steps += 1
        if self._cancelled.is_set():
            raise JobCancelled()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage of the request (reported in the Server-Timing header and in /metrics)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0


@dataclass
class LoadContext:
    """What `setup` gets: where to load, and a timer that splits the cold load into phases."""

    settings: RunnerSettings
    device: str
    timer: PhaseTimer = field(default_factory=PhaseTimer)
    notes: list[str] = field(default_factory=list)

    def phase(self, name: str):
        """One of resolve, read_weights, to_device, optimise, warmup (others are reported too)."""
        return self.timer.phase(name)

    def note(self, text: str) -> None:
        """Something an operator should see in /runner/info and the log (a fallback, a skipped flag)."""
        self.notes.append(text)


class Runner:
    """Base class of every runner. One instance serves one model for the life of the process."""

    route: ClassVar[Route]
    # Messages for failures the SDK maps itself (contract 4.4 catalogue); runners override per pipeline.
    oom_message: ClassVar[str] = "Out of memory error."
    error_message: ClassVar[str] = "Pipeline error."

    def __init__(self, settings: RunnerSettings, device: str):
        self.settings = settings
        self.device = device
        self.dtype: str | None = None
        self.optimisations_applied: dict[str, str] = {}

    # --- set-up -----------------------------------------------------------------------------------
    def setup(self, ctx: LoadContext) -> None:
        """Load the model onto `ctx.device`. Raise to put the runner in ERROR with the reason."""

    def warmup(self) -> None:
        """Run once after setup, before /health says ready, so the first real request is not slower."""

    # --- per request ------------------------------------------------------------------------------
    def check(self, request: BaseModel) -> None:
        """Cheap validation before the request queues; raise RunnerError (400) for caller errors."""

    def predict(self, request: BaseModel, job: Job) -> BaseModel | Iterator[BaseModel]:
        """Run one request in a worker thread. Return the response model, or for a streaming route an
        iterator of chunks (the SDK frames them as SSE)."""
        raise NotImplementedError

    def stream_error_chunk(self, request: BaseModel, exc: BaseException) -> BaseModel | None:
        """The final chunk to send when a stream fails after it started (None: just close)."""
        return None

    def wants_stream(self, request: BaseModel) -> bool:
        return bool(getattr(request, "stream", False)) and self.route.streams

    # --- reporting --------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Extra runner facts for /runner/info."""
        return {}

    @classmethod
    def download_plan(cls, model_id: str) -> list[tuple[str, list[str] | None]]:
        """(repo_id, allow_patterns) pairs `runner-sdk download` fetches for `model_id`."""
        return [(model_id, None)]
