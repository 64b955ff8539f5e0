"""Serve a runner on 127.0.0.1 in a background thread: a real uvicorn server for tests and benchmarks."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import uvicorn

from .app import create_app
from .runner import Runner
from .settings import RunnerSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    """`with RunningServer(MyRunner, settings) as srv: httpx.get(srv.url + "/health")`"""

    def __init__(self, runner_cls: type[Runner], settings: RunnerSettings, wait_ready: bool = True,
                 ready_timeout: float = 120.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(runner_cls, settings)
        self.host = self.app.state.host
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.wait_ready = wait_ready
        self.ready_timeout = ready_timeout

    def __enter__(self) -> RunningServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        if self.wait_ready:
            self.wait_until({"IDLE", "OK", "ERROR"}, self.ready_timeout)
        return self

    def wait_until(self, statuses: set[str], timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            status = httpx.get(self.url + "/health").json()["status"]
            if status in statuses:
                return status
            time.sleep(0.02)
        raise TimeoutError(f"health stayed {status} for {timeout} s")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
