"""Server-Sent Events for a streaming route (/llm with `stream: true`, contract 3.7, Q3).

The runner's iterator runs on a job thread; chunks cross to the event loop through an asyncio queue. The
first chunk is produced before any byte is sent, so a failure before it is still a JSON error with a status;
a failure after it ends the stream with the runner's error chunk, then `[DONE]`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pydantic
from fastapi.responses import StreamingResponse

from .runner import Job, Runner

log = logging.getLogger("runner_sdk")

DONE = b"data: [DONE]\n\n"


def sse(chunk: pydantic.BaseModel) -> bytes:
    """One SSE event holding `chunk` as JSON."""
    return b"data: " + chunk.model_dump_json().encode() + b"\n\n"


def _resolve(fut: asyncio.Future, value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


class ChunkPump:
    """Runs `runner.predict(inputs, job)` as an iterator on a job thread, handing chunks to the loop.

    `first` resolves with ("ok", first chunk or None) or ("error", exception); `chunks` then yields
    ("chunk", c) ..., and finally ("end", None) or ("error", exc).
    """

    def __init__(self, runner: Runner, inputs: Any, job: Job):
        self.loop = asyncio.get_running_loop()
        self.runner, self.inputs, self.job = runner, inputs, job
        self.chunks: asyncio.Queue = asyncio.Queue()
        self.first: asyncio.Future = self.loop.create_future()

    def _put(self, kind: str, item: Any) -> None:
        self.loop.call_soon_threadsafe(self.chunks.put_nowait, (kind, item))

    def __call__(self) -> None:
        """The job-thread side."""
        call = self.loop.call_soon_threadsafe
        try:
            iterator: Iterator = iter(self.runner.predict(self.inputs, self.job))
            head = next(iterator, None)
            call(_resolve, self.first, ("ok", head))
            if head is None:
                return
            for chunk in iterator:
                self._put("chunk", chunk)
            self._put("end", None)
        except BaseException as exc:  # noqa: BLE001 - reported to the stream, never lost
            if not self.first.done():
                call(_resolve, self.first, ("error", exc))
            self._put("error", exc)

    async def events(self, head: pydantic.BaseModel | None, on_done: Callable[[], None]) -> AsyncIterator[bytes]:
        """The SSE body after the first chunk: every chunk, the error chunk if the stream fails, `[DONE]`."""
        try:
            if head is not None:
                yield sse(head)
                while True:
                    kind, item = await self.chunks.get()
                    if kind == "chunk":
                        yield sse(item)
                        continue
                    if kind == "error":
                        log.error("stream failed after it started: %r", item)
                        final = self.runner.stream_error_chunk(self.inputs, item)
                        if final is not None:
                            yield sse(final)
                    break
            yield DONE
            on_done()
        finally:
            self.job.cancel()  # no-op when finished; stops generation at once when the client went away

    def response(self, head: pydantic.BaseModel | None, on_done: Callable[[], None]) -> StreamingResponse:
        return StreamingResponse(self.events(head, on_done), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
