"""The runner's load and health state machine (contract 3.1), kept apart from the I/O around it.

    LOADING --loaded--> READY --(runner.healthy() gives a reason)--> ERROR
       \\--failed--> ERROR

READY is reported as IDLE when nothing runs or waits and OK while serving, with one rule: `/health` never
goes LOADING -> OK without an IDLE in between. If requests queued during the load keep the runner busy, it
says LOADING until its first idle moment (go-livepeer waits for IDLE before it sends work).
"""

from __future__ import annotations

import enum


class Phase(enum.Enum):
    LOADING = "LOADING"
    READY = "READY"
    ERROR = "ERROR"


class Lifecycle:
    """Phase, error reason, and whether the runner has been idle since it became ready."""

    def __init__(self) -> None:
        self.phase = Phase.LOADING
        self.error: str | None = None
        self.idle_reached = False

    def loaded(self) -> None:
        if self.phase is Phase.LOADING:
            self.phase = Phase.READY

    def fail(self, reason: str) -> None:
        """Enter ERROR for good with `reason` (a failed load, or a runner that reports itself unhealthy)."""
        self.phase = Phase.ERROR
        self.error = reason

    def note_busy(self, busy: bool) -> None:
        if self.phase is Phase.READY and not busy:
            self.idle_reached = True

    def status(self, busy: bool) -> str:
        """The /health status: LOADING, IDLE, OK or ERROR."""
        if self.phase is Phase.ERROR:
            return "ERROR"
        if self.phase is Phase.LOADING:
            return "LOADING"
        self.note_busy(busy)
        if not self.idle_reached:
            return "LOADING"
        return "OK" if busy else "IDLE"
