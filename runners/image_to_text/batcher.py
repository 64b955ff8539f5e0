"""Batch the requests that wait for the model: while one batch runs, later requests queue here, and the next
thread to get the model runs every compatible waiting request in one call (capacity > 1 lets them wait
together). With capacity 1 it degrades to one request per call, with no extra thread or delay.

Used by the image-to-text and text-to-speech runners: `Batcher(run, max_batch, key)`, then per request
`batcher.submit(item, job)` on the job thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from runner_sdk import Job, JobCancelled

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Slot(Generic[T]):
    item: T
    job: Job
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class Batcher(Generic[T, R]):
    """Combine waiting requests into model calls of at most `max_batch`, one call at a time.

    Args:
        run: runs one batch: (items, jobs) -> one result per item, in order. It may raise; every request of
            the batch then gets that error.
        max_batch: the most requests in one call.
        key: items with the same key can share a call (e.g. the same prompt length); None: all can.
    """

    def __init__(self, run: Callable[[list[T], list[Job]], list[R]], max_batch: int,
                 key: Callable[[T], Hashable] | None = None):
        self._run = run
        self.max_batch = max(1, int(max_batch))
        self._key = key or (lambda item: None)
        self._pending: list[_Slot[T]] = []
        self._pending_lock = threading.Lock()
        self._model_lock = threading.Lock()
        self.batches_run = 0
        self.items_run = 0
        self.largest_batch = 0

    def submit(self, item: T, job: Job) -> R:
        """Run `item` in the next batch it fits and return its result.

        Args:
            item: what `run` takes for this request. job: the request's job (cancellation).
        Returns:
            This item's result from `run`.
        Raises:
            JobCancelled: the job was cancelled before its batch ran. Anything `run` raised for its batch.
        """
        slot = _Slot(item, job)
        with self._pending_lock:
            self._pending.append(slot)
        while not slot.done.is_set():
            with self._model_lock:
                if slot.done.is_set():
                    break
                batch = self._take()
                if batch:
                    self._run_batch(batch)
        if slot.error is not None:
            raise slot.error
        return slot.result

    def _take(self) -> list[_Slot[T]]:
        """The oldest waiting request and up to max_batch - 1 more with its key; cancelled ones are dropped."""
        with self._pending_lock:
            for slot in [s for s in self._pending if s.job.cancelled]:
                self._pending.remove(slot)
                slot.error = JobCancelled()
                slot.done.set()
            if not self._pending:
                return []
            key = self._key(self._pending[0].item)
            batch = [s for s in self._pending if self._key(s.item) == key][: self.max_batch]
            for slot in batch:
                self._pending.remove(slot)
            return batch

    def _run_batch(self, batch: list[_Slot[T]]) -> None:
        try:
            results = self._run([s.item for s in batch], [s.job for s in batch])
            for slot, result in zip(batch, results, strict=True):
                slot.result = result
        except BaseException as exc:  # every request of the batch answers the same failure
            for slot in batch:
                slot.error = exc
        finally:
            self.batches_run += 1
            self.items_run += len(batch)
            self.largest_batch = max(self.largest_batch, len(batch))
            for slot in batch:
                slot.done.set()

    def info(self) -> dict[str, int]:
        """Counters for /runner/info: batches run, requests run, the largest batch, the limit."""
        return {"batches": self.batches_run, "requests": self.items_run, "largest_batch": self.largest_batch,
                "max_batch": self.max_batch}
