"""Does a runner answer the way go-livepeer can read? The wire-contract checks, for any server's answers.

Two levels, both returning a list of problems (empty: conformant), so a load run can count them and a test
can print them:

- `check_response(response, route)`: one answer of a generate route, pure (no network). The status is one
  the route allows (`route.error_statuses` + 200, contract 4.2); every answer is JSON; a non-200 body is
  go-livepeer's `HTTPError` `{"detail": {"msg": str}}`, or FastAPI's 422 list; a 200 body decodes into the
  route's response model with Go's `encoding/json` rules (an `int` field is a JSON integer, never `3.0` or
  `"3"`, and fits in 64 bits; a `bool` is `true`/`false`; NaN is no JSON); a stream on a streaming route is
  `data: <chunk json>\\n\\n` events ending with `data: [DONE]\\n\\n`.
- `check_conformance(url, route, json=... | data=..., files=...)`: sends a small battery to a running server
  (your valid request, a schema error, a model mismatch, a bad token, another pipeline's path, the GET
  routes) and checks every answer, status and shape:

      problems = check_conformance(srv.url, MyRunner.route, data={"prompt": "x"},
                                   files={"image": ("in.png", png_bytes, "image/png")})
      assert not problems, "\\n".join(problems)

`worker_check` (`runner-sdk conformance URL --pipeline P`) builds on these checks for any runner, ours or a
bring-your-own container: built-in requests per pipeline, and go-livepeer's consequence of each failure.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from . import schemas
from .pipelines import PIPELINES
from .routes import Route

__all__ = ["assert_conformant", "check", "check_conformance", "check_response", "http_error_problems",
           "response_problems", "sse_problems", "validation_list_problems"]

_INT64 = (-(2**63), 2**63 - 1)
_SEMVER = re.compile(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")


# --- one answer -------------------------------------------------------------------------------------------


def _short(data: object) -> str:
    return str(data)[:200]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (Go's encoding/json rejects it)")


def _load_json(content: bytes | str) -> Any:
    """Parse as Go would accept it (NaN/Infinity are errors). Raises ValueError."""
    return json.loads(content, parse_constant=_reject_constant)


def http_error_problems(body: object) -> list[str]:
    """`{"detail": {"msg": str}}`: go-livepeer's HTTPError (400, 401, 413, 415, 500)."""
    if not (isinstance(body, dict) and isinstance(body.get("detail"), dict)
            and isinstance(body["detail"].get("msg"), str)):
        return [f"error body is not an HTTPError {{\"detail\":{{\"msg\":str}}}}: {_short(body)}"]
    return []


def validation_list_problems(body: object) -> list[str]:
    """FastAPI's 422 body: `{"detail": [{"loc": [str|int, ...], "msg": str, "type": str}, ...]}`."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if not isinstance(detail, list):
        return [f"422 body has no detail list: {_short(body)}"]
    for item in detail:
        if not (isinstance(item, dict) and isinstance(item.get("msg"), str) and isinstance(item.get("type"), str)
                and isinstance(item.get("loc"), list)
                and all(isinstance(p, (str, int)) and not isinstance(p, bool) for p in item["loc"])):
            return [f"422 item is not a validation error: {_short(item)}"]
    return []


def _int_overflow(model: BaseModel, where: str = "") -> list[str]:
    """Go decodes an `int` field into 64 bits: a larger integer is a decode error there."""
    out = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, BaseModel):
                out += _int_overflow(item, f"{where}{name}.")
            elif (info.annotation is int and isinstance(item, int) and not isinstance(item, bool)
                  and not _INT64[0] <= item <= _INT64[1]):
                out.append(f"{where}{name}={item} does not fit Go's int (64 bits)")
    return out


def model_problems(content: bytes | str, model: type[BaseModel], what: str = "200 body") -> list[str]:
    """Whether `content` decodes into `model` the way go-livepeer's generated client decodes it: strict JSON
    types (no number for a string, no `3.0` or `"3"` for an integer, no `0` for a boolean), ints in 64 bits,
    no NaN. Unknown keys are fine (Go ignores them)."""
    try:
        _load_json(content)
        parsed = model.model_validate_json(content, strict=True)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']} "
                           f"(got {_short(json.dumps(e.get('input'), default=repr))})" for e in exc.errors()[:5])
        return [f"{what} does not decode as {model.__name__}: {errors}"]
    except ValueError as exc:
        return [f"{what} is not JSON go-livepeer can read: {exc}"]
    return [f"{what}: {p}" for p in _int_overflow(parsed)]


def sse_problems(text: str, route: Route) -> list[str]:
    """A 200 stream: `data: <chunk>\\n\\n` events, each chunk the route's response model, the last one (on a
    chat route) the only one with a finish_reason, then `data: [DONE]\\n\\n`."""
    text = text.replace("\r\n", "\n")
    if not text.endswith("\n\n"):
        return [f"stream does not end with a blank line after its last event: {text[-200:]!r}"]
    events = [e for e in text.split("\n\n") if e]
    for event in events:
        if any(not line.startswith("data: ") for line in event.split("\n")):
            return [f"stream event with a line that is not 'data: ...': {event[:200]!r}"]
    if not events or events[-1] != "data: [DONE]":
        return [f"stream does not end with 'data: [DONE]': {(events[-1] if events else text)[:200]!r}"]
    if "data: [DONE]" in events[:-1]:
        return ["stream has events after 'data: [DONE]'"]
    chunks = []
    for event in events[:-1]:
        payload = "\n".join(line[6:] for line in event.split("\n"))
        problems = model_problems(payload, route.response_model, "stream chunk")
        if problems:
            return problems
        chunks.append(route.response_model.model_validate_json(payload))
    if not chunks:
        return ["stream has no chunk before [DONE]"]
    if all(hasattr(c, "choices") for c in chunks):
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
        if not finishes or not finishes[-1] or any(finishes[:-1]):
            return [f"finish_reason not only on the last chunk: {finishes}"]
    return []


def _content_type(headers: Any) -> str:
    ctype = headers.get("content-type") or headers.get("Content-Type") or ""
    if isinstance(ctype, list):  # schemathesis' Response keeps every header as a list
        ctype = ",".join(ctype)
    return ctype


def response_problems(status: int, headers: Mapping[str, Any], content: bytes, route: Route) -> list[str]:
    """One answer of `route`, given as its status, headers and body bytes (see `check_response`)."""
    allowed = {200, *route.error_statuses}
    if status not in allowed:
        return [f"status {status} not allowed on {route.path} ({sorted(allowed)}): {content[:200]!r}"]
    ctype = _content_type(headers)
    if status == 200 and "text/event-stream" in ctype and route.streams:
        return sse_problems(content.decode("utf-8", "replace"), route)
    if "application/json" not in ctype:
        return [f"{status} answered with content-type {ctype!r}, not JSON: {content[:200]!r}"]
    if status == 200:
        return model_problems(content, route.response_model)
    try:
        body = _load_json(content)
    except ValueError:
        return [f"{status} body is not JSON: {content[:200]!r}"]
    if status == 422:
        return validation_list_problems(body)
    return http_error_problems(body)


def check_response(response: Any, route: Route) -> list[str]:
    """Problems with one answer of `route`: an httpx (or requests, or schemathesis) response."""
    return response_problems(response.status_code, response.headers, response.content, route)


check = check_response  # the name benchmarks/soak and tests/reliability use


# --- a battery against a running server -----------------------------------------------------------------


def _get_problems(client: httpx.Client, path: str, model: type[BaseModel]) -> tuple[list[str], Any]:
    r = client.get(path)
    if r.status_code != 200 or "application/json" not in _content_type(r.headers):
        return [f"GET {path}: {r.status_code} {_content_type(r.headers)!r}: {r.text[:200]}"], None
    problems = [f"GET {path}: {p}" for p in model_problems(r.content, model, "body")]
    return problems, (None if problems else _load_json(r.content))


def _gets(client: httpx.Client) -> tuple[list[str], str | None]:
    problems, health = _get_problems(client, "/health", schemas.HealthCheck)
    if health is not None and health["status"] not in ("IDLE", "OK"):
        problems.append(f"GET /health: status {health['status']} (wait until the runner is ready): {health}")
    found, version = _get_problems(client, "/version", schemas.Version)
    problems += found
    if version is not None and not _SEMVER.fullmatch(version["version"]):
        problems.append(f"GET /version: version {version['version']!r} is not semver")
    for path, model, key in (("/hardware/info", schemas.HardwareInformation, "gpu_info"),
                             ("/hardware/stats", schemas.HardwareStats, "gpu_stats")):
        found, body = _get_problems(client, path, model)
        problems += found
        if body is not None and not all(k.isdigit() for k in body[key]):
            problems.append(f"GET {path}: {key} keys are not GPU indices: {list(body[key])}")
    return problems, (version or {}).get("model_id")


def _json_error_problems(r: httpx.Response) -> list[str]:
    """An answer outside the route (another pipeline's path): still JSON, an HTTPError."""
    if "application/json" not in _content_type(r.headers):
        return [f"{r.status_code} answered with content-type {_content_type(r.headers)!r}, not JSON: {r.text[:200]}"]
    try:
        return http_error_problems(_load_json(r.content))
    except ValueError:
        return [f"{r.status_code} body is not JSON: {r.text[:200]}"]


class _Battery:
    def __init__(self, client: httpx.Client, route: Route, json_body: Any, data: Mapping[str, Any] | None,
                 files: Any, auth: dict[str, str]):
        self.client, self.route, self.json, self.data, self.files, self.auth = (
            client, route, json_body, dict(data or {}), files, auth)
        self.problems: list[str] = []

    def post(self, what: str, expect: int | None, path: str | None = None, headers: dict[str, str] | None = None,
             msg: str | None = None, **kwargs: Any) -> httpx.Response | None:
        try:
            r = self.client.post(path or self.route.path, headers=self.auth if headers is None else headers,
                                 **kwargs)
        except httpx.HTTPError as exc:
            self.problems.append(f"{what}: no answer ({type(exc).__name__}: {exc})")
            return None
        found = check_response(r, self.route) if path is None else _json_error_problems(r)
        if expect is not None and r.status_code != expect:
            found.insert(0, f"status {r.status_code}, expected {expect}: {r.text[:300]}")
        elif msg is not None and not found and r.json()["detail"]["msg"] != msg:
            found.append(f"message {r.json()['detail']['msg']!r}, expected {msg!r}")
        self.problems += [f"{what}: {p}" for p in found]
        return r

    def valid(self, **changes: Any) -> dict[str, Any]:
        """The author's request as httpx keyword arguments, with `changes` merged into its fields."""
        if self.route.multipart:
            return {"data": {**self.data, **changes}, "files": self.files}
        return {"json": {**self.json, **changes} if changes else self.json}

    def schema_error(self) -> dict[str, Any]:
        if self.route.multipart:
            return {"data": self.data}  # no file part
        required = [n for n, f in self.route.request_model.model_fields.items() if f.is_required()]
        if required and isinstance(self.json, dict):
            return {"json": {k: v for k, v in self.json.items() if k not in required}}
        return {"json": [self.json]}  # an array where an object belongs


def check_conformance(url: str, route: Route, *, json: Any = None, data: Mapping[str, Any] | None = None,
                      files: Any = None, auth_token: str | None = None, model_id: str | None = None,
                      timeout: float = 60.0) -> list[str]:
    """Send a small battery of requests to a running runner and check every answer against the contract.

    Args:
        url: the server's base URL (`RunningServer.url`, or any ai-runner compatible server).
        route: the generate route it serves (`MyRunner.route`).
        json: a valid request body for a JSON route (must answer 200).
        data, files: for a multipart route, the valid request's text fields and file parts as httpx takes
            them (`{"image": ("in.png", png_bytes, "image/png")}`; give bytes, not open files: each part is
            sent more than once).
        auth_token: the server's AUTH_TOKEN when it has one: the battery then also checks the 401s.
        model_id: the served MODEL_ID (read from /version when None), for the model-mismatch check.
        timeout: per request, seconds.
    Returns:
        Problems found, each prefixed by the check that found it; empty when the server conforms. Checked:
        GET /health, /version, /hardware/info and /hardware/stats shapes; the valid request answers 200 with
        the response model (and, on a streaming route, `"stream": true` answers a well-formed SSE stream);
        a schema error answers `route.schema_error_status` (the 422 list, or a 400 HTTPError); a request
        naming another model answers 400 with the mismatch message; with `auth_token`, no token and a wrong
        token answer 401 with `route.auth_message`; POSTing another pipeline's path answers a JSON 500.
    Raises:
        ValueError: no valid request of the route's kind (`json`, or `files` for a multipart route).
        httpx.TransportError: the GET routes cannot be reached (no server at `url`).
    """
    if route.multipart and files is None:
        raise ValueError(f"{route.path} is multipart: pass the valid request's `files` (and `data`)")
    if not route.multipart and json is None:
        raise ValueError(f"{route.path} takes JSON: pass the valid request's body as `json`")
    auth = {"Authorization": f"Bearer {auth_token}"} if auth_token else {}
    with httpx.Client(base_url=url.rstrip("/"), timeout=timeout) as client:
        problems, served_id = _gets(client)
        model_id = model_id or served_id
        b = _Battery(client, route, json, data, files, auth)
        b.post("valid request", 200, **b.valid())
        if route.streams and isinstance(json, dict):
            r = b.post("valid request with stream=true", 200, **b.valid(stream=True))
            if r is not None and r.status_code == 200 and "text/event-stream" not in _content_type(r.headers):
                b.problems.append("valid request with stream=true: answered "
                                  f"{_content_type(r.headers)!r}, not text/event-stream")
        b.post("schema error", route.schema_error_status, **b.schema_error())
        if route.model_field and model_id:
            other = model_id + "-not-this-one"
            b.post("model mismatch", 400, msg=route.mismatch_message(model_id, other),
                   **b.valid(**{route.model_field: other}))
        if auth_token:
            b.post("no bearer token", 401, headers={}, msg=route.auth_message, **b.valid())
            b.post("wrong bearer token", 401, headers={"Authorization": f"Bearer {auth_token}x"},
                   msg=route.auth_message, **b.valid())
        other_path = next(p.path for p in PIPELINES.values() if p.route is not None and p.path != route.path)
        b.post(f"POST {other_path} (a pipeline not served)", 500, path=other_path, json={})
    return problems + b.problems


def assert_conformant(url: str, route: Route, **kwargs: Any) -> None:
    """`check_conformance`, raising AssertionError that lists every problem found."""
    problems = check_conformance(url, route, **kwargs)
    assert not problems, f"{len(problems)} answer(s) outside the contract:\n" + "\n".join(problems)
