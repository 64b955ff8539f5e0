"""Plain helpers of the reliability suite (fixtures are in conftest.py)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import httpx
import pytest

from benchmarks.soak.targets import TARGETS, Target, unavailable
from runner_sdk import RunnerSettings
from runner_sdk.testing import RunningServer

TOKEN = "rel-s3cret-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CAPACITY, QUEUE = 2, 2


class LogCapture(logging.Handler):
    """Every log record of the session, formatted with its arguments (the token must never appear)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # noqa: BLE001 - a record that cannot format is still evidence
            self.lines.append(repr(record.__dict__))


def target_params(names=None):
    return [pytest.param(TARGETS[n], id=n) for n in (names or TARGETS)]


def require(target: Target) -> None:
    why = unavailable(target)
    if why:
        pytest.skip(why)


class env_during:
    """Set env vars while a runner starts (runners read their options in setup), then restore them."""

    def __init__(self, values: dict[str, str]):
        self.values = values
        self.saved: dict[str, str | None] = {}

    def __enter__(self):
        for k, v in self.values.items():
            self.saved[k] = os.environ.get(k)
            os.environ[k] = v

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def settings_for(target: Target, model_dir: Path, **overrides) -> RunnerSettings:
    base = dict(pipeline=target.pipeline, model_id=target.model_id, model_dir=model_dir, device="cpu",
                capacity=CAPACITY, queue_size=QUEUE, auth_token=TOKEN)
    base.update(overrides)
    return RunnerSettings(**base)


def start_server(target: Target, model_dir: Path, runner_cls=None, wait_ready=True, **overrides) -> RunningServer:
    srv = RunningServer(runner_cls or target.runner_class(), settings_for(target, model_dir, **overrides),
                        wait_ready=wait_ready)
    with env_during(target.env):
        srv.__enter__()
    return srv


def answers_valid_request(srv_url: str, target: Target, headers=None) -> httpx.Response:
    """The runner still works: a valid request gets a 200 of the route's response model."""
    r = httpx.post(srv_url + target.route.path, headers=headers if headers is not None else AUTH, timeout=120,
                   **target.valid_request())
    assert r.status_code == 200, r.text[:500]
    target.route.response_model.model_validate(r.json())
    return r


def idle(srv: RunningServer, timeout: float = 5.0) -> bool:
    """True once nothing runs or waits (the counters the load and disconnect tests check)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if srv.host.capacity.in_flight == 0 and srv.host.capacity.queued == 0:
            return True
        time.sleep(0.01)
    return False


# --- which files a request touches --------------------------------------------------------------------

class FileWatch:
    """Python-level file access (audit events open, os.listdir, os.scandir) under given roots, recorded
    process-wide while active. Native opens (e.g. safetensors in Rust) raise no audit event, so tests pair
    this with a check of what the runner reports it loaded."""

    _installed = False
    _active: list[FileWatch] = []

    def __init__(self, roots: list[Path]):
        self.roots = [str(Path(r).resolve()) for r in roots]
        self.hits: list[tuple[str, str]] = []

    @classmethod
    def _hook(cls, event: str, args: tuple) -> None:
        if not cls._active or event not in {"open", "os.listdir", "os.scandir"} or not args:
            return
        path = args[0]
        if isinstance(path, bytes):
            path = path.decode("utf-8", "replace")
        if not isinstance(path, str):
            return
        full = os.path.realpath(os.path.abspath(path))
        for watch in cls._active:
            if any(full == r or full.startswith(r + os.sep) for r in watch.roots):
                watch.hits.append((event, full))

    def __enter__(self) -> FileWatch:
        import sys

        if not FileWatch._installed:
            sys.addaudithook(FileWatch._hook)  # cannot be removed; inert while no watch is active
            FileWatch._installed = True
        FileWatch._active.append(self)
        return self

    def __exit__(self, *exc) -> None:
        FileWatch._active.remove(self)


def raw_http(request: httpx.Request) -> bytes:
    """The request as HTTP/1.1 bytes, to send over a plain socket we can close at any moment."""
    body = request.read()
    lines = [f"{request.method} {request.url.raw_path.decode()} HTTP/1.1", f"Host: {request.url.netloc.decode()}"]
    lines += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() not in {"host", "content-length"}]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def current_rss() -> int:
    from benchmarks.soak.targets import process_rss

    return process_rss(os.getpid())
