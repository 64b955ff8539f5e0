"""Capacity: N concurrent executions and a bounded FIFO queue behind them.

Past slots + queue a request is refused at once with InsufficientCapacity (a JSON 500 go-livepeer
understands). A waiter that is cancelled (its client went away) gives its queue place back at once.
Everything here runs on the event loop, so plain counters need no lock.
"""

from __future__ import annotations

import asyncio
from collections import deque

from .errors import InsufficientCapacity


class Capacity:
    def __init__(self, slots: int, queue_size: int):
        self.slots = slots
        self.queue_size = queue_size
        self.in_flight = 0
        self.queued = 0
        self._free = slots
        self._waiters: deque[asyncio.Future[None]] = deque()

    def admit(self) -> None:
        """Take a queue place or refuse. Pair with `wait_slot` (which gives the place back)."""
        if self.in_flight + self.queued >= self.slots + self.queue_size:
            raise InsufficientCapacity(
                f"{self.in_flight} running and {self.queued} queued (capacity {self.slots}, queue {self.queue_size})")
        self.queued += 1

    async def wait_slot(self) -> None:
        """Wait for an execution slot; on return the caller owns it and must `release()` it."""
        try:
            if self._free > 0 and not self._waiters:
                self._free -= 1
            else:
                fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._waiters.append(fut)
                try:
                    await fut
                except asyncio.CancelledError:
                    if fut.done() and not fut.cancelled():
                        self._hand_on()  # the slot reached us as we were cancelled: pass it on
                    else:
                        self._waiters.remove(fut)
                    raise
        finally:
            self.queued -= 1
        self.in_flight += 1

    def leave_queue(self) -> None:
        """Give back a queue place taken by `admit` without ever waiting for a slot."""
        self.queued -= 1

    def release(self) -> None:
        self.in_flight -= 1
        self._hand_on()

    def _hand_on(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self._free += 1
