"""Test a runner the way go-livepeer will call it: a real uvicorn server on 127.0.0.1 in a background thread,
and the contract conformance checker (`runner_sdk.conformance`) to point at it. No pytest plugin to install.

In a custom runner's own test file::

    import pytest
    from runner_sdk.testing import check_conformance, serve, server_fixture

    def test_my_runner(tmp_path):
        with serve(MyRunner, model_id="acme/my-model", model_dir=tmp_path) as srv:   # waits until IDLE
            r = httpx.post(srv.url + "/upscale", data={"prompt": "x"}, files={"image": ("a.png", png)})
            assert r.status_code == 200
            problems = check_conformance(srv.url, MyRunner.route, data={"prompt": "x"},
                                         files={"image": ("a.png", png, "image/png")})
            assert not problems, "\\n".join(problems)

    # or one server for a whole module: `prepare(folder)` gets a fresh folder and returns settings to add
    # (e.g. {"model_dir": folder} after writing weights there)
    server = pytest.fixture(scope="module")(server_fixture(MyRunner, prepare=write_weights, model_id="acme/m"))

    def test_one(server):
        assert httpx.get(server.url + "/health").json()["status"] == "IDLE"

`serve` takes `RunnerSettings` fields as keywords (defaults: the pipeline named by the route, `device="cpu"`,
no AUTH_TOKEN, `model_id="test/model"`); `options={...}` sets the runner's own `Options` fields without
touching the environment. The server is `RunningServer`: `.url`, `.host` (the RunnerHost: `.host.runner`,
`.host.capacity`), `.wait_until({"IDLE"})`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from .app import create_app
from .conformance import assert_conformant, check_conformance, check_response
from .parsing import HEADER_CAP
from .pipelines import PIPELINES
from .runner import Runner
from .settings import RunnerSettings

__all__ = ["RunningServer", "assert_conformant", "check_conformance", "check_response", "free_port", "serve",
           "server_fixture", "settings_for"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    """`with RunningServer(MyRunner, settings) as srv: httpx.get(srv.url + "/health")`"""

    def __init__(self, runner_cls: type[Runner], settings: RunnerSettings, wait_ready: bool = True,
                 ready_timeout: float = 120.0, preflight_error: str | None = None):
        """Args:
            runner_cls, settings: what to serve. wait_ready: wait in `__enter__` until /health leaves LOADING.
            ready_timeout: seconds to wait. preflight_error: serve as `runner-sdk serve` does after a failed
                preflight (/health ERROR with it from the first answer).
        """
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(runner_cls, settings, preflight_error)
        self.host = self.app.state.host
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                timeout_graceful_shutdown=5, **HEADER_CAP)
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


def settings_for(runner_cls: type[Runner], **overrides: Any) -> RunnerSettings:
    """RunnerSettings for a test server of `runner_cls`: the route's pipeline, the CPU, no AUTH_TOKEN and
    MODEL_ID "test/model" unless `overrides` (RunnerSettings fields) say otherwise."""
    path = runner_cls.route.path
    pipeline = next((p.name for p in PIPELINES.values() if p.path == path), path.strip("/"))
    base: dict[str, Any] = {"pipeline": pipeline, "model_id": "test/model", "device": "cpu", "auth_token": ""}
    return RunnerSettings(**{**base, **overrides})


def _with_options(runner_cls: type[Runner], options: dict[str, Any]) -> type[Runner]:
    """A subclass whose instances get `Options(**options)` instead of reading the environment."""
    chosen = runner_cls.Options.from_env(**options)

    def __init__(self, settings, device, options=None):  # noqa: N807
        runner_cls.__init__(self, settings, device, chosen)

    return type(runner_cls.__name__, (runner_cls,), {"__init__": __init__, "__module__": runner_cls.__module__,
                                                     "__qualname__": runner_cls.__qualname__})


@contextmanager
def serve(runner_cls: type[Runner], settings: RunnerSettings | None = None, *, options: dict[str, Any] | None = None,
          wait_ready: bool = True, ready_timeout: float = 120.0, **overrides: Any) -> Iterator[RunningServer]:
    """Serve `runner_cls` on a free 127.0.0.1 port for the `with` block; waits until /health leaves LOADING.

    Args:
        runner_cls: the Runner subclass.
        settings: full RunnerSettings; when None, `settings_for(runner_cls, **overrides)`.
        options: the runner's `Options` fields (validated; an invalid value raises OptionsError here).
        wait_ready: wait until IDLE (or OK/ERROR) before entering; False returns while LOADING.
        **overrides: RunnerSettings fields, e.g. `model_id=`, `model_dir=`, `capacity=`, `auth_token=`.
    Yields:
        The RunningServer (`.url`, `.host`).
    Raises:
        RuntimeError: the server did not start. TimeoutError: still LOADING after `ready_timeout` s.
    """
    if settings is None:
        settings = settings_for(runner_cls, **overrides)
    elif overrides:
        settings = RunnerSettings(**{**settings.model_dump(), **overrides})
    cls = _with_options(runner_cls, options) if options is not None else runner_cls
    with RunningServer(cls, settings, wait_ready=wait_ready, ready_timeout=ready_timeout) as srv:
        yield srv


def server_fixture(runner_cls: type[Runner], prepare: Callable[[Path], dict[str, Any] | None] | None = None,
                   **serve_kwargs: Any) -> Callable[..., Iterator[RunningServer]]:
    """A generator function to wrap with `pytest.fixture` (any scope): it serves `runner_cls` for the
    fixture's life. `prepare(folder)` runs first with a fresh temporary folder (write weights there) and
    returns settings to add (e.g. `{"model_dir": folder}`); the folder is MODEL_DIR unless it says otherwise.

        server = pytest.fixture(scope="module")(server_fixture(MyRunner, prepare=write_weights, model_id="a/b"))
    """

    def server(tmp_path_factory: Any) -> Iterator[RunningServer]:
        folder = tmp_path_factory.mktemp(runner_cls.__name__)
        prepared = (prepare(folder) or {}) if prepare is not None else {}
        with serve(runner_cls, **{"model_dir": folder, **serve_kwargs, **prepared}) as srv:
            yield srv

    return server
