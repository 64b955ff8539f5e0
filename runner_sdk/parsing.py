"""Request bodies into the route's request model: JSON or streamed multipart, schema errors in the shape
the route's status needs (FastAPI's 422 list, or a 400 message on /llm, Q7), and the model-id check every
route shares (contract 3.5-3.13: a non-empty id that differs from MODEL_ID is a 400)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydantic
from fastapi import Request

from .errors import RunnerError, SchemaInvalid, validation_errors
from .integrity import numeric_error
from .multipart import MultipartError, is_multipart, parse_multipart
from .routes import Route
from .uploads import UploadedFile

MAX_JSON_BYTES = 8 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
# uvicorn's settings that cap a request's head (request line + headers) at MAX_HEADER_BYTES: the h11 parser,
# whose incomplete-event limit refuses a larger head with a 400 and closes the connection. httptools (picked
# by default when installed) has no such limit and accepted a 1 MB header.
HEADER_CAP: dict[str, Any] = {"http": "h11", "h11_max_incomplete_event_size": MAX_HEADER_BYTES}


def _invalid(route: Route, errors: list[dict]) -> RunnerError:
    if route.schema_error_status == 422:
        return SchemaInvalid(errors)
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"][1:]) or "body"
    return RunnerError(route.schema_error_status, f"Invalid request: {where}: {first['msg']}")


def _missing(parts: list[str] | tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"type": "missing", "loc": ["body", p], "msg": "Field required", "input": None} for p in parts]


def check_model(route: Route, body: pydantic.BaseModel, model_id: str) -> None:
    """Raises RunnerError(400) when the request names a model other than `model_id`."""
    asked = getattr(body, route.model_field, "") if route.model_field else ""
    if asked and asked != model_id:
        raise RunnerError(400, route.mismatch_message(model_id, asked))


def _validate(route: Route, data: Any) -> pydantic.BaseModel:
    try:
        body = route.request_model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise _invalid(route, validation_errors(exc.errors())) from None
    # A well-typed but non-finite or absurd number (guidance 1e38, temperature "nan" in a form part) is a
    # caller's value error: 400 {"detail":{"msg":...}} naming the field and its range, as go-livepeer reads
    # value errors; 422 stays the schema-error list.
    if (why := numeric_error(body)) is not None:
        raise RunnerError(400, why)
    return body


class NonStandardJSON(ValueError):
    """NaN, Infinity or -Infinity in a JSON body, or a number too large for a double (RFC 8259 has none)."""


def _reject_constant(name: str) -> Any:
    raise NonStandardJSON(f"{name} is not valid JSON (RFC 8259): send a finite number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise NonStandardJSON(f"{text} does not fit a double")
    return value


def loads_strict(raw: bytes | str) -> Any:
    """`json.loads` without the non-standard literals Python accepts (NaN, Infinity, -Infinity) and without
    numbers that overflow a double; for JSON carried in text parts too (loras, SAM2's point_coords).

    Raises:
        NonStandardJSON: such a literal or number (a ValueError). json.JSONDecodeError: malformed JSON.
    """
    return json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)


async def read_limited(request: Request, limit: int) -> tuple[bytes, bool]:
    """The body, or (b"", True) when it is over `limit` bytes (drained, not held)."""
    buf = bytearray()
    over = False
    async for chunk in request.stream():
        if over:
            continue
        buf += chunk
        if len(buf) > limit:
            over, buf = True, bytearray()
    return bytes(buf), over


async def parse_body(request: Request, route: Route, tmpdir: Path | None, model_id: str) -> pydantic.BaseModel:
    """The validated request model, model id checked.

    Args:
        request: the incoming request (its body is consumed).
        route: the route served. tmpdir: where multipart file parts are spooled (None for JSON routes).
        model_id: MODEL_ID, for the mismatch check.
    Raises:
        RunnerError: 400 for headers over MAX_HEADER_BYTES, a non-finite or out-of-range number (naming the
            field and its range), then 400/413/422 as the contract orders them (schema, then model, then
            size: contract 3.6).
    """
    head = sum(len(k) + len(v) + 4 for k, v in request.scope.get("headers", ()))
    if head > MAX_HEADER_BYTES:
        # The parser refuses a head that arrives in pieces (HEADER_CAP); one that arrived whole is refused here.
        raise RunnerError(400, f"request headers over {MAX_HEADER_BYTES} bytes")
    if route.multipart:
        body, oversized = await _parse_multipart(request, route, tmpdir)
    else:
        body, oversized = await _parse_json(request, route), False
    check_model(route, body, model_id)
    if oversized:
        raise RunnerError(413, route.too_large_message)
    return body


async def _parse_multipart(request: Request, route: Route, tmpdir: Path | None) -> tuple[pydantic.BaseModel, bool]:
    if not is_multipart(request):
        raise _invalid(route, _missing(route.file_parts))
    assert tmpdir is not None
    try:
        form = await parse_multipart(request, route.file_parts, tmpdir, route.max_file_bytes)
    except MultipartError as exc:
        raise RunnerError(400, str(exc)) from None
    missing = [p for p in route.file_parts if p not in form.files and p not in form.oversized]
    if missing:
        raise _invalid(route, _missing(missing))
    # An oversized part was drained, not kept: validate the rest with a placeholder, answer 413 after the
    # model check (upstream's order).
    placeholder = {p: UploadedFile(name=p, filename=None, content_type=None, path=tmpdir / p, size=0)
                   for p in form.oversized}
    return _validate(route, {**form.fields, **placeholder, **form.files}), bool(form.oversized)


async def _parse_json(request: Request, route: Route) -> pydantic.BaseModel:
    ctype = request.headers.get("content-type", "")
    if ctype and "json" not in ctype.lower():
        raw, _ = await read_limited(request, MAX_JSON_BYTES)
        raise _invalid(route, [{"type": "model_attributes_type", "loc": ["body"],
                                "msg": "Input should be a valid dictionary or object to extract fields from",
                                "input": raw[:200].decode("utf-8", "replace")}])
    raw, over = await read_limited(request, MAX_JSON_BYTES)
    if over:
        # 413 is not in every route's status set: a caller error is a 400 everywhere.
        raise RunnerError(400, f"request body over {MAX_JSON_BYTES} bytes")
    try:
        data = loads_strict(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _invalid(route, [{"type": "json_invalid", "loc": ["body", getattr(exc, "pos", 0)],
                                "msg": "JSON decode error", "input": {}}]) from None
    except NonStandardJSON as exc:
        raise _invalid(route, [{"type": "json_invalid", "loc": ["body"],
                                "msg": f"JSON decode error: {exc}", "input": {}}]) from None
    except RecursionError:
        # A few thousand nested brackets exhaust the decoder's stack: still the caller's malformed body.
        raise _invalid(route, [{"type": "json_invalid", "loc": ["body"],
                                "msg": "JSON nested too deeply", "input": {}}]) from None
    if data is None and route.schema_error_status != 422:
        data = {}
    return _validate(route, data)

