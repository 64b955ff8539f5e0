"""One generate request, start to end:

    auth -> parse (schema, model id, size) -> decode (once loaded: a caller error is a 400 before it queues)
    -> admit, or `insufficient capacity` -> wait for the load and a slot (a disconnect gives the place back)
    -> predict on a job thread (device memory peak measured) -> JSON, or SSE on a streaming route.

Every answer is JSON with a status the route allows (contract 4.2); SSE only after a stream's first chunk.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import pydantic
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from .auth import check_auth
from .errors import JobCancelled, RunnerError, error_response, is_out_of_memory
from .host import RunnerHost
from .parsing import parse_body
from .runner import Job, Runner
from .streaming import ChunkPump

log = logging.getLogger("runner_sdk")
# Set in the request's ASGI scope when the client went away: /metrics counts it as "disconnected", not 500.
OUTCOME = "runner_sdk.outcome"


class _Gone(Exception):
    """The client disconnected; nobody will read an answer."""


async def _wait_disconnect(request: Request) -> None:
    """Returns when the client goes away (only after the body has been read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _race(awaitable, watcher: asyncio.Future):
    """Await `awaitable`, raising _Gone if the client disconnects first (the awaitable is cancelled)."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        return task.result()
    task.cancel()
    with suppress(asyncio.CancelledError, Exception):
        await task
    raise _Gone()


def _predict_json(runner: Runner, inputs: Any, job: Job) -> JSONResponse:
    """predict, then the JSON body, both on the job thread: a large answer (SAM2's printed masks run to tens of
    MB) is serialised in its slot, never on the event loop where it would stall /health."""
    result = runner.predict(inputs, job)
    with job.stage("encode_json"):
        return JSONResponse(result.model_dump(mode="json"))


class RequestPath:
    """The generate endpoint of one app: `await path(request)` answers one request."""

    def __init__(self, host: RunnerHost):
        self.host = host
        self.settings = host.settings
        self.runner_cls: type[Runner] = host.runner_cls
        self.route = self.runner_cls.route
        # Skip the thread hop when the runner has nothing to decode.
        self.has_decode = self.runner_cls.decode is not Runner.decode

    async def __call__(self, request: Request) -> Response:
        t0 = time.perf_counter()
        check_auth(request, self.settings, self.route)
        tmpdir = Path(tempfile.mkdtemp(prefix="runner-")) if self.route.multipart else None
        try:
            body = await parse_body(request, self.route, tmpdir, self.settings.model_id)
            return await self._execute(request, body, t0)
        finally:
            if tmpdir is not None:
                shutil.rmtree(tmpdir, ignore_errors=True)

    async def _execute(self, request: Request, body: pydantic.BaseModel, t0: float) -> Response:
        watcher = asyncio.ensure_future(_wait_disconnect(request))
        job = Job()
        try:
            return await self._admitted(body, job, watcher, t0)
        except (_Gone, JobCancelled) as exc:
            request.scope[OUTCOME] = "disconnected"
            log.info("%s: client disconnected (%s); nobody reads the answer", self.route.path, type(exc).__name__)
            return error_response(500, "client disconnected" if isinstance(exc, _Gone) else "request cancelled")
        except asyncio.CancelledError:
            # The server cancels what is still running when its shutdown grace period ends. Stop the job and
            # still answer JSON: uvicorn's own fallback is a plain-text 500, which go-livepeer cannot parse.
            job.cancel()
            log.warning("%s: request cancelled by the shutdown", self.route.path)
            return error_response(500, "runner shutting down")
        except RunnerError:
            raise
        except Exception as exc:
            if is_out_of_memory(exc):
                log.error("out of memory: %s", exc)
                self.host.on_oom()
                return error_response(500, self.runner_cls.oom_message)
            log.exception("%s failed: %s", self.route.path, exc)
            return error_response(500, self.runner_cls.error_message)
        finally:
            if not watcher.done():
                watcher.cancel()

    async def _decode(self, runner: Runner, body: pydantic.BaseModel, watcher: asyncio.Future) -> Any:
        if not self.has_decode:
            return body
        return await _race(asyncio.to_thread(runner.decode, body), watcher)

    async def _admitted(self, body: pydantic.BaseModel, job: Job, watcher: asyncio.Future, t0: float) -> Response:
        host = self.host
        # A caller's error is a 400 before the request queues or takes a slot (a full runner must not turn it
        # into `insufficient capacity`, which makes the gateway retry the bad request elsewhere). While the
        # model loads there is no runner to ask yet: those requests are decoded in their slot.
        loaded = host.serving_runner()
        inputs = await self._decode(loaded, body, watcher) if loaded is not None else None
        host.admit(stream=bool(getattr(body, "stream", False)) and self.route.streams)
        runner = await _race(host.acquire(), watcher)  # holds a slot from here
        queue_s = time.perf_counter() - t0
        if loaded is None:
            try:
                inputs = await self._decode(runner, body, watcher)
            except BaseException:
                host.release()
                raise
        if runner.wants_stream(body):
            return await self._stream(runner, inputs, job, watcher)
        fut = host.run_in_slot(host.measured, _predict_json, runner, inputs, job)
        try:
            response = await _race(asyncio.shield(fut), watcher)
        except _Gone:
            job.cancel()  # stops at its next step; the slot frees when the thread returns
            # Nobody awaits it now: take its JobCancelled so asyncio does not log it as never retrieved.
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())
            raise
        host.requests_served += 1
        self._observe(job, queue_s, t0, response)
        return response

    async def _stream(self, runner: Runner, inputs: Any, job: Job, watcher: asyncio.Future) -> Response:
        pump = ChunkPump(runner, inputs, job)
        self.host.run_in_slot(self.host.measured, pump)
        try:
            kind, head = await _race(asyncio.shield(pump.first), watcher)
        except _Gone:
            job.cancel()
            raise
        if kind == "error":
            raise head
        watcher.cancel()  # from here Starlette's StreamingResponse watches for the disconnect

        def served() -> None:
            self.host.requests_served += 1

        return pump.response(head, served)

    def _observe(self, job: Job, queue_s: float, t0: float, response: Response) -> None:
        """Latency and stage histograms, and the Server-Timing header (milliseconds)."""
        total = time.perf_counter() - t0
        metrics = self.host.metrics
        metrics.latency.labels(self.route.path).observe(total)
        metrics.stage.labels("queue").observe(queue_s)
        for name, seconds in job.timings.items():
            metrics.stage.labels(name).observe(seconds)
        parts = [f"queue;dur={queue_s * 1000:.3f}"]
        parts += [f"{name};dur={s * 1000:.3f}" for name, s in job.timings.items()]
        parts.append(f"total;dur={total * 1000:.3f}")
        response.headers["Server-Timing"] = ", ".join(parts)
