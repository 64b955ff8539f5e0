"""Errors as the contract shapes them: `{"detail":{"msg":...}}` with a status the route allows (4.1, 4.2)."""

from __future__ import annotations

import math
from typing import Any

from fastapi.responses import JSONResponse

INSUFFICIENT_CAPACITY = "insufficient capacity"
_MAX_ECHO_DEPTH = 16


class RunnerError(Exception):
    """Raise anywhere in a runner (decode, predict) to answer `status` with `{"detail": {"msg": msg}}`.

    Args:
        status: an HTTP status the route lists in `Route.error_statuses` (contract 4.2, 4.5); go-livepeer
            cannot parse others. 400 for a caller's error, 500 for the runner's own failure.
        msg: the message, as the contract's catalogue spells it where it has one (4.4, 4.7).
        headers: extra response headers (e.g. WWW-Authenticate on a 401).

    Raised from `setup`, it puts the runner in ERROR with `msg` as the reason.
    """

    def __init__(self, status: int, msg: str, headers: dict[str, str] | None = None):
        super().__init__(msg)
        self.status = status
        self.msg = msg
        self.headers = headers


class SchemaInvalid(RunnerError):
    """A request that does not fit the route's schema: FastAPI's 422 list (contract 4.1)."""

    def __init__(self, errors: list[dict[str, Any]]):
        super().__init__(422, "validation error")
        self.errors = errors


class BadRequest(RunnerError):
    """A caller's error: 400 with `msg` (raise it from `decode`, so it never takes a capacity slot)."""

    def __init__(self, msg: str):
        super().__init__(400, msg)


class InsufficientCapacity(RunnerError):
    # 500, not 503/429: go-livepeer cannot parse those, and it retries another orchestrator on this text
    # without suspending ours (contract 4.3, 7).
    def __init__(self, why: str = "all slots and the queue are full"):
        super().__init__(500, f"{INSUFFICIENT_CAPACITY}: {why}")


class JobCancelled(Exception):
    """Raised inside a job at a step boundary once its client has gone away."""


def error_body(msg: str) -> dict[str, Any]:
    return {"detail": {"msg": msg}}


def error_response(status: int, msg: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(msg), status_code=status, headers=headers)


def runner_error_response(exc: RunnerError) -> JSONResponse:
    body = {"detail": exc.errors} if isinstance(exc, SchemaInvalid) else error_body(exc.msg)
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


def is_out_of_memory(exc: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError / torch.OutOfMemoryError (without importing torch here), Python's
    MemoryError, and the allocators' own texts ("CUDA out of memory", CPU "not enough memory", MPS/HIP "out of
    memory"): each answered as the route's out-of-memory 500 (contract 4.4) with the device cache freed."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return "out of memory" in text or "not enough memory" in text


def validation_errors(exc_errors: list[dict[str, Any]], prefix: tuple[str | int, ...] = ("body",)) -> list[dict]:
    """Pydantic errors in FastAPI's 422 list shape: loc starts with "body", JSON-safe input."""
    out = []
    for err in exc_errors:
        item = {"type": err["type"], "loc": [*prefix, *err.get("loc", ())], "msg": err["msg"]}
        if "input" in err:
            item["input"] = _json_safe(err["input"])
        out.append(item)
    return out


def _json_safe(value: Any, depth: int = 0) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        # NaN / Infinity are not JSON: echoing them back would make the error body itself invalid.
        return repr(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if depth >= _MAX_ECHO_DEPTH:
        # A deeply nested input is echoed no deeper: rendering it all could exhaust the stack.
        return "..."
    if isinstance(value, dict):
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, depth + 1) for v in value]
    return repr(value)
