"""Capacity: N concurrent executions (an `asyncio.Semaphore`, FIFO) and a bounded queue in front of them.

Past slots + queue a request is refused at once with InsufficientCapacity (a JSON 500 go-livepeer
understands, contract 4.3). A waiter that is cancelled (its client went away) gives its queue place back at
once. Everything here runs on the event loop, so the plain counters need no lock.
"""

from __future__ import annotations

import asyncio

from .errors import InsufficientCapacity


class Capacity:
    """`slots` concurrent executions behind a queue of at most `queue_size` waiters."""

    def __init__(self, slots: int, queue_size: int):
        self.slots = slots
        self.queue_size = queue_size
        self.in_flight = 0
        self.queued = 0
        self._slots = asyncio.Semaphore(slots)

    def admit(self) -> None:
        """Take a queue place. Pair with `wait_slot` (which gives the place back) or `leave_queue`.

        Raises:
            InsufficientCapacity: every slot and queue place is taken.
        """
        if self.in_flight + self.queued >= self.slots + self.queue_size:
            raise InsufficientCapacity(
                f"{self.in_flight} running and {self.queued} queued (capacity {self.slots}, queue {self.queue_size})")
        self.queued += 1

    async def wait_slot(self) -> None:
        """Wait for an execution slot; on return the caller owns it and must `release()` it. Cancelling the
        wait gives both the queue place and any slot back."""
        try:
            await self._slots.acquire()
        finally:
            self.queued -= 1
        self.in_flight += 1

    def leave_queue(self) -> None:
        """Give back a queue place taken by `admit` without ever waiting for a slot."""
        self.queued -= 1

    def release(self) -> None:
        self.in_flight -= 1
        self._slots.release()
