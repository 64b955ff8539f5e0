"""The interface a model author implements, in the spirit of LitServe's `LitAPI` and Cog's `BasePredictor`:
load once (`setup`, then `warmup`), then per request `decode` (cheap, typed) and `predict` (the work).

    class CaptionRunner(Runner[schemas.ImageToTextForm, Image.Image]):
        route = routes.IMAGE_TO_TEXT                       # or PIPELINES["image-to-text"].route
        Options = CaptionOptions                           # env vars, parsed and named by pydantic-settings

        def setup(self, ctx):                              # weights onto ctx.device, phases timed by ctx.phase()
            ...
            ctx.report(dtype="float16")
        def decode(self, request):                         # before a slot is taken: caller errors are 400s
            return open_image(request.image.path)
        def predict(self, image, job):                     # on a job thread; job.step() between steps
            return schemas.ImageToTextResponse(text=...)

What the SDK does around it: parses and validates the body (422/400), checks the model id the route names
(400), calls `decode` before the request queues once the model is loaded, so a caller's error never becomes
`insufficient capacity`, runs `predict` in a capacity slot with the device memory peak measured, frames an
iterator from `predict` as Server-Sent Events on a streaming route, and maps errors to the contract's JSON.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from .errors import JobCancelled
from .measure import PhaseTimer
from .options import RunnerOptions
from .routes import Route
from .settings import RunnerSettings
from .uploads import UploadedFile

log = logging.getLogger("runner_sdk")

RequestT = TypeVar("RequestT", bound=BaseModel)
InputsT = TypeVar("InputsT")

__all__ = ["Job", "LoadContext", "Runner", "UploadedFile"]


class Job:
    """One request's life inside a worker thread: cancellation and a per-stage timing breakdown."""

    def __init__(self) -> None:
        self._cancelled = threading.Event()
        self._timer = PhaseTimer()
        self.timings: dict[str, float] = self._timer.seconds  # stage name -> seconds
        self.steps = 0

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def step(self) -> None:
        """Call at each step boundary (a denoising step, a token, a batch).

        Raises:
            JobCancelled: the client went away (or the server is shutting down); the SDK answers for it.
        """
        self.steps += 1
        if self._cancelled.is_set():
            raise JobCancelled()

    def stage(self, name: str):
        """Time a stage of the request, in seconds (the Server-Timing header and /metrics report it);
        a repeated name adds up."""
        return self._timer.phase(name)


@dataclass
class LoadContext:
    """What `setup` gets: where to load, a timer that splits the cold load into phases, and the one place a
    runner reports what it loaded (dtype, optimisations applied, notes), shown in /runner/info and the log.

    Attributes:
        settings: the process's RunnerSettings (MODEL_ID, MODEL_DIR, flags...).
        device: the torch device to load onto ("cuda:N" or "cpu").
        dtype: the weights' dtype name, e.g. "float16" (set it with `report`).
        applied: optimisation name -> what was done (e.g. {"SFAST": "torch.compile fallback"}).
        notes: things an operator should see (a fallback, a flag ignored).
    """

    settings: RunnerSettings
    device: str
    timer: PhaseTimer = field(default_factory=PhaseTimer)
    notes: list[str] = field(default_factory=list)
    dtype: str | None = None
    applied: dict[str, str] = field(default_factory=dict)

    def phase(self, name: str):
        """Time a load phase: one of init, resolve, read_weights, to_device, optimise, warmup (others are
        reported too; a repeated name adds up)."""
        return self.timer.phase(name)

    def note(self, text: str) -> None:
        """Something an operator should see in /runner/info and the log (a fallback, a skipped flag)."""
        log.warning(text)
        self.notes.append(text)

    def report(self, dtype: str | None = None, **applied: str) -> None:
        """Record the dtype served and optimisations applied (`ctx.report(dtype="bfloat16")`,
        `ctx.report(SFAST="torch.compile fallback")`). Each optimisation is also logged."""
        if dtype is not None:
            self.dtype = dtype
        for name, what in applied.items():
            self.applied[name] = what
            log.info("%s: %s", name, what)


class Runner(Generic[RequestT, InputsT]):
    """Base class of every runner. One instance serves one model for the life of the process.

    Class attributes:
        route: the POST route served (a Route from `routes` / the pipeline table, or your own).
        Options: a `RunnerOptions` subclass of this runner's own env vars; an instance is `self.options`.
        oom_message / error_message: the 500 texts for out-of-memory and unexpected failures (contract 4.4).
    """

    route: ClassVar[Route]
    Options: ClassVar[type[RunnerOptions]] = RunnerOptions
    oom_message: ClassVar[str] = "Out of memory error."
    error_message: ClassVar[str] = "Pipeline error."

    def __init__(self, settings: RunnerSettings, device: str, options: RunnerOptions | None = None):
        """Args:
            settings: the process settings. device: "cuda:N" or "cpu".
            options: this runner's options; read from the environment when None.

        Raises:
            OptionsError: an env var of `Options` is invalid (the message names the variable).
        """
        self.settings = settings
        self.device = device
        self.options = options if options is not None else self.Options.from_env()

    # --- set-up -----------------------------------------------------------------------------------
    def setup(self, ctx: LoadContext) -> None:
        """Load the model onto `ctx.device`. Raise anything to put the runner in ERROR with the reason."""

    def warmup(self) -> None:
        """Run once after setup, before /health says ready, so the first real request is not slower."""

    def close(self) -> None:
        """At server shutdown (and after a failed setup): stop what `setup` started that outlives a request
        (engine threads or processes, pollers). The default does nothing."""

    # --- per request ------------------------------------------------------------------------------
    def decode(self, request: RequestT) -> InputsT:
        """Turn a validated request into what `predict` consumes; cheap work only (no inference).

        Runs before the request queues once the model is loaded (on a worker thread), so raise
        `RunnerError`/`BadRequest` here for every caller error: it answers 400 without taking a slot.
        The default passes the request through.
        """
        return request  # type: ignore[return-value]

    def predict(self, inputs: InputsT, job: Job) -> BaseModel | Iterator[BaseModel]:
        """Run one request on a job thread; call `job.step()` between steps so a cancelled job stops.

        Returns:
            The route's response model, or on a streaming route an iterator of chunks (framed as SSE).
        Raises:
            RunnerError: answered with its status and message. An out-of-memory error: 500 `oom_message`
            (the CUDA cache is freed). Anything else: 500 `error_message`, logged with its traceback.
        """
        raise NotImplementedError

    def wants_stream(self, request: RequestT) -> bool:
        """Whether this request asks for SSE (the route streams and `stream` is true)."""
        return bool(getattr(request, "stream", False)) and self.route.streams

    def stream_error_chunk(self, inputs: InputsT, exc: BaseException) -> BaseModel | None:
        """The final chunk to send when a stream fails after it started (None: just close)."""
        return None

    # --- health and reporting ---------------------------------------------------------------------
    def healthy(self) -> str | None:
        """None while the runner can serve; otherwise why not.

        A plain `str` reason (a dead engine thread, a lost device) turns /health to ERROR for good, and
        requests are refused with it. A `NotReady(reason)` (an upstream server restarting) is LOADING while it
        lasts and recovers through IDLE once `healthy()` returns None again (contract 3.1: ERROR gets a
        managed container destroyed; LOADING only takes the runner out of the pool)."""
        return None

    def info(self) -> dict[str, Any]:
        """Live runner facts for /runner/info's `runner` object (counters, what was loaded)."""
        return {}

    @classmethod
    def download_plan(cls, model_id: str) -> list[tuple[str, list[str] | None]]:
        """(repo_id, allow_patterns) pairs `runner-sdk download` fetches for `model_id`."""
        return [(model_id, None)]
