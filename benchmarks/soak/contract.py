"""What every answer of a generate route must look like (contract 4.1, 4.2): a status the route allows,
JSON, and either the route's response model, an HTTPError `{"detail":{"msg":str}}`, or FastAPI's 422 list.
Returns the problems found, so a load run can count them and a test can print them."""

from __future__ import annotations

import json

from runner_sdk.routes import Route


def http_error_problems(body: object) -> list[str]:
    if not (isinstance(body, dict) and isinstance(body.get("detail"), dict)
            and isinstance(body["detail"].get("msg"), str)):
        return [f"error body is not an HTTPError: {str(body)[:200]}"]
    return []


def validation_list_problems(body: object) -> list[str]:
    detail = body.get("detail") if isinstance(body, dict) else None
    if not isinstance(detail, list):
        return [f"422 body has no detail list: {str(body)[:200]}"]
    for item in detail:
        if not (isinstance(item, dict) and isinstance(item.get("msg"), str) and isinstance(item.get("type"), str)
                and isinstance(item.get("loc"), list) and all(isinstance(p, (str, int)) for p in item["loc"])):
            return [f"422 item is not a validation error: {str(item)[:200]}"]
    return []


def sse_problems(text: str, route: Route) -> list[str]:
    """A 200 stream: `data: <chunk>` events, one final chunk with a finish_reason, then `data: [DONE]`."""
    events = [line for line in text.split("\n") if line]
    if not events or any(not e.startswith("data: ") for e in events):
        return [f"stream line without 'data: ': {text[:200]}"]
    if events[-1] != "data: [DONE]":
        return [f"stream does not end with [DONE]: {events[-1][:200]}"]
    chunks = []
    for e in events[:-1]:
        try:
            chunks.append(route.response_model.model_validate_json(e[6:]))
        except ValueError as exc:
            return [f"stream chunk does not fit {route.response_model.__name__}: {exc}"]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    if not finishes or not finishes[-1] or any(finishes[:-1]):
        return [f"finish_reason not only on the last chunk: {finishes}"]
    return []


def response_problems(status: int, headers, content: bytes, route: Route) -> list[str]:
    allowed = {200, *route.error_statuses}
    if status not in allowed:
        return [f"status {status} not allowed on {route.path} ({sorted(allowed)}): {content[:200]!r}"]
    ctype = headers.get("content-type") or headers.get("Content-Type") or ""
    if isinstance(ctype, list):  # schemathesis' Response keeps every header as a list
        ctype = ",".join(ctype)
    if status == 200 and "text/event-stream" in ctype and route.streams:
        return sse_problems(content.decode("utf-8", "replace"), route)
    if "application/json" not in ctype:
        return [f"{status} answered with content-type {ctype!r}: {content[:200]!r}"]
    try:
        body = json.loads(content)
    except ValueError:
        return [f"{status} body is not JSON: {content[:200]!r}"]
    if status == 422:
        return validation_list_problems(body)
    if status != 200:
        return http_error_problems(body)
    try:
        route.response_model.model_validate(body)
    except ValueError as exc:
        return [f"200 body does not fit {route.response_model.__name__}: {exc}"]
    return []


def check(response, route: Route) -> list[str]:
    """For an httpx (or requests) response."""
    return response_problems(response.status_code, response.headers, response.content, route)
