"""`runner-sdk conformance URL --pipeline P`: any runner, checked the way go-livepeer's AI worker treats it.

Each check is one line: PASS, or FAIL with what was wrong and what go-livepeer would do about it (crash, leak
capacity, suspend the orchestrator, never become ready...), from runner-contract.md 3.1, 4.2, 4.3 and 7. The
answers' shapes are judged by `conformance` (the SDK's wire checker); this module sends requests shaped as
go-livepeer sends them: a built-in valid request per pipeline of the table (JSON, or multipart with a
generated PNG or WAV), naming the served model as the gateway does.
"""

from __future__ import annotations

import io
import math
import struct
import time
import wave
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from . import schemas
from .conformance import _content_type, _load_json, check_response, model_problems
from .errors import INSUFFICIENT_CAPACITY
from .pipelines import PIPELINES
from .routes import Route

__all__ = ["CheckResult", "run_checks", "sample_png", "sample_request", "sample_wav"]

SUSPENDED = "the gateway suspends the orchestrator and retries elsewhere (a runner fault)"
UNLISTED = ("status outside the route's set or not JSON: go-livepeer's parser fills nothing; text-to-image "
            "leaks the model's capacity (combined) or crashes a standalone worker, other routes return 200 null "
            "to the user, who is billed")


@dataclass
class CheckResult:
    """One check: its name, whether it passed, what was seen, and go-livepeer's consequence of a failure."""

    name: str
    ok: bool
    detail: str = ""
    consequence: str = ""
    skipped: bool = False

    def line(self) -> str:
        """`PASS name`, `SKIP name (why)` or `FAIL name: detail -> go-livepeer: consequence`."""
        if self.skipped:
            return f"SKIP {self.name} ({self.detail})"
        if self.ok:
            return f"PASS {self.name}" + (f" ({self.detail})" if self.detail else "")
        return f"FAIL {self.name}: {self.detail} -> go-livepeer: {self.consequence}"


def sample_png(size: int = 64) -> bytes:
    """A `size`x`size` RGB gradient PNG (no imaging library needed)."""
    rows = b"".join(b"\x00" + bytes(v for x in range(size) for v in (x * 4 % 256, y * 4 % 256, 128))
                    for y in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def sample_wav(seconds: float = 1.0, rate: int = 16000) -> bytes:
    """A mono 16-bit WAV of a 440 Hz tone."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
                               for i in range(int(seconds * rate))))
    return buf.getvalue()


_TEXT = {"prompt": "a lighthouse at dusk", "text": "Hello from the conformance check.", "width": 64,
         "height": 64, "num_inference_steps": 1, "seed": 7}


def sample_request(route: Route, model_id: str | None) -> dict[str, Any]:
    """The route's valid request as go-livepeer sends it, as httpx keyword arguments (`json=`, or `data=` and
    `files=`), naming `model_id` in the route's model field.

    Args:
        route: the pipeline's route. model_id: the served MODEL_ID (None: the field is left out).
    Returns:
        {"json": {...}} or {"data": {...}, "files": {...}}.
    """
    fields = route.request_model.model_fields
    values: dict[str, Any] = {k: v for k, v in _TEXT.items() if k in fields}
    if route.model_field and model_id:
        values[route.model_field] = model_id
    if route.path == "/llm":
        values.update(messages=[{"role": "user", "content": "What is the capital of France?"}], max_tokens=8)
    if not route.multipart:
        return {"json": values}
    files = {part: (("in.wav", sample_wav(), "audio/wav") if part == "audio" else ("in.png", sample_png(),
                                                                                     "image/png"))
             for part in route.file_parts}
    return {"data": {k: str(v) for k, v in values.items()}, "files": files}


def _consequence(route: Route, status: int | None, problems: list[str]) -> str:
    if status is None:
        return "no answer: the job fails, " + SUSPENDED
    if status not in {200, *route.error_statuses} or any("not JSON" in p for p in problems):
        return UNLISTED
    if status == 200:
        return "the 200 body does not decode into go-livepeer's types: an orchestrator 500, " + SUSPENDED
    return SUSPENDED


class _Checker:
    def __init__(self, client: httpx.Client, route: Route, token: str | None):
        self.client, self.route, self.token = client, route, token
        self.auth = {"Authorization": f"Bearer {token}"} if token else {}
        self.results: list[CheckResult] = []
        self.model_id: str | None = None

    def add(self, name: str, problems: list[str], consequence: str, detail: str = "") -> None:
        self.results.append(CheckResult(name, not problems, "; ".join(problems) or detail, consequence))

    def post(self, headers: dict[str, str] | None = None, **kwargs: Any) -> tuple[httpx.Response | None, str]:
        try:
            return self.client.post(self.route.path, headers=self.auth if headers is None else headers,
                                    **kwargs), ""
        except httpx.HTTPError as exc:
            return None, f"no answer ({type(exc).__name__}: {exc})"


_HEALTH_FAIL = {
    "plain": "a 200 without a JSON content type is a nil-dereference panic: the node crashes at start-up "
             "(managed: the watcher exits, the container is never returned to the pool)",
    "shape": "not ready: go-livepeer keeps polling until its deadline (2 min external, 3-5 min managed) and start-up "
             "fails; in the managed watch loop each answer is a failure, the container is destroyed after 2",
    "error": "start-up fails: the node exits (external or warm managed); a running managed container is destroyed",
    "unknown": "taken as ready at start-up, then only logged: never IDLE, so a managed container is never returned "
               "to the pool",
    "late": "start-up times out: external, the node start-up aborts after 2 min; managed, the container is "
            "destroyed after 3 min (5 with optimization_flags)",
}


def _health_once(c: _Checker) -> tuple[str | None, str]:
    """(failure kind or None, status or what was seen) for one /health answer."""
    try:
        r = c.client.get("/health")
    except httpx.HTTPError as exc:
        return None, f"no answer ({type(exc).__name__})"
    if r.status_code != 200:
        return None, f"status {r.status_code}"
    if "json" not in _content_type(r.headers):
        return "plain", f"200 with content-type {_content_type(r.headers)!r}: {r.text[:80]!r}"
    try:
        body = _load_json(r.content)
    except ValueError:
        return "shape", f"body is not JSON: {r.text[:80]!r}"
    status = body.get("status") if isinstance(body, dict) else None
    if not isinstance(status, str):
        return "shape", f"no string status go-livepeer can parse: {r.text[:80]}"
    if status == "ERROR":
        return "error", f"ERROR: {body.get('error') or r.text[:200]}"
    if status not in ("LOADING", "IDLE", "OK"):
        return "unknown", f"status {status!r} is none of LOADING, IDLE, OK, ERROR"
    return None, status


def check_health(c: _Checker, ready_timeout: float) -> bool:
    """Poll /health as go-livepeer's start-up probe does, until IDLE/OK; records the `health` check.

    Args:
        c: the checker. ready_timeout: seconds LOADING or no answer is tolerated.
    Returns:
        Whether the runner became ready (go-livepeer stops at a failure here, so do the other checks).
    """
    t0 = time.monotonic()
    seen_loading = False
    while True:
        kind, seen = _health_once(c)
        if kind is not None:
            c.add("health", [seen], _HEALTH_FAIL[kind])
            return False
        if seen in ("IDLE", "OK"):
            note = " (LOADING before: go-livepeer already counts that as ready)" if seen_loading else ""
            c.add("health", [], "", f"{seen} after {time.monotonic() - t0:.1f} s{note}")
            return True
        seen_loading = seen_loading or seen == "LOADING"
        if time.monotonic() - t0 > ready_timeout:
            c.add("health", [f"not IDLE/OK within {ready_timeout:.0f} s (last: {seen})"], _HEALTH_FAIL["late"])
            return False
        time.sleep(0.25)


def _get_json(c: _Checker, path: str, model: type, crash: str) -> tuple[list[str], Any, str]:
    try:
        r = c.client.get(path)
    except httpx.HTTPError as exc:
        return [f"no answer ({type(exc).__name__})"], None, ""
    if r.status_code != 200:
        return [f"status {r.status_code}: {r.text[:100]}"], None, ""
    if "json" not in _content_type(r.headers):
        return [f"200 with content-type {_content_type(r.headers)!r}"], None, crash
    problems = model_problems(r.content, model, "body")
    return problems, (None if problems else _load_json(r.content)), ""


def check_gets(c: _Checker, pipeline: str) -> None:
    """/version (semver, the pipeline asked for) and /hardware/info, read once by go-livepeer after ready.

    Args:
        c: the checker (its `model_id` is set from /version). pipeline: the PIPELINE expected.
    """
    problems, version, crash = _get_json(c, "/version", schemas.Version, "a nil-dereference panic: node crash")
    if version is not None:
        c.model_id = version["model_id"]
        from .conformance import _SEMVER

        if not _SEMVER.fullmatch(version["version"]):
            problems.append(f"version {version['version']!r} is not semver")
        if version["pipeline"] != pipeline:
            problems.append(f"pipeline {version['pipeline']!r}, not {pipeline!r}")
    c.add("version", problems, crash or "go-livepeer cannot read who the runner is: the gateway's minimum-version "
          "rules cannot match it, and a pipeline mismatch with aiModels.json makes every job a 500 (suspended)",
          f"{version['pipeline']} {version['model_id']} {version['version']}" if version else "")
    problems, _info, crash = _get_json(c, "/hardware/info", schemas.HardwareInformation,
                                       "a nil-dereference panic: node crash")
    c.add("hardware/info", problems, crash or "tolerated (5 s timeout): the orchestrator reports no GPU for it")


def _choices_problems(route: Route, text: str, stream: bool) -> list[str]:
    """/llm: every answer and every chunk carries at least one choice (go-livepeer reads choices[0])."""
    if route.path != "/llm":
        return []
    if not stream:
        body = _load_json(text)
        return [] if body.get("choices") else ["200 body has empty choices"]
    for event in text.replace("\r\n", "\n").split("\n\n"):
        if event.startswith("data: {") and not _load_json(event[6:]).get("choices"):
            return [f"stream chunk with empty choices: {event[:120]!r}"]
    return []


def check_good_request(c: _Checker, stream: bool = False) -> None:
    """The route's valid request answers 200 in the right shape; records `good request[, stream]`.

    Args:
        c: the checker. stream: send `"stream": true` (a streaming route) and check the SSE answer.
    """
    name = "good request, stream" if stream else "good request"
    kwargs = sample_request(c.route, c.model_id)
    if stream:
        kwargs["json"]["stream"] = True
    r, error = c.post(**kwargs)
    if r is None:
        c.add(name, [error], _consequence(c.route, None, []))
        return
    problems = check_response(r, c.route)
    if r.status_code != 200:
        problems.insert(0, f"status {r.status_code}: {r.text[:200]}")
    elif stream and "text/event-stream" not in _content_type(r.headers):
        problems.append(f"answered {_content_type(r.headers)!r}, not text/event-stream")
    if not problems:
        problems = _choices_problems(c.route, r.text, stream)
    consequence = _consequence(c.route, r.status_code, problems)
    if stream and r.status_code != 200:
        consequence = "a non-200 stream answer is reduced to 'unexpected status code', its body dropped: " + SUSPENDED
    elif stream and any("[DONE]" in p for p in problems):
        consequence = "the user's stream ends without data: [DONE] (OpenAI clients treat it as cut off)"
    elif any("empty choices" in p for p in problems):
        consequence = "no text reaches the user, who is billed (go-livepeer and OpenAI clients read choices[0])"
    c.add(name, problems, consequence, f"{r.elapsed.total_seconds():.2f} s")


def _expect_error(c: _Checker, name: str, status: int, kwargs: dict[str, Any], on_200: str,
                  headers: dict[str, str] | None = None) -> None:
    r, error = c.post(headers=headers, **kwargs)
    if r is None:
        c.add(name, [error], _consequence(c.route, None, []))
        return
    problems = check_response(r, c.route)
    if r.status_code != status:
        problems.insert(0, f"status {r.status_code}, expected {status}: {r.text[:200]}")
    if r.status_code == 200:
        consequence = on_200
    elif r.status_code == 422 and c.route.path == "/llm":
        consequence = "go-livepeer does not type a 422 on /llm: the user gets 200 null and is billed"
    elif status == 400 and r.status_code in {400, *c.route.error_statuses} and not any("not JSON" in p for p in
                                                                                        problems):
        consequence = "a caller's mistake is treated as a runner fault: " + SUSPENDED + ", instead of a 400 to the user"
    else:
        consequence = _consequence(c.route, r.status_code, problems)
    c.add(name, problems, consequence)


def check_refusals(c: _Checker) -> None:
    """Bad token, wrong model id, bad input, oversized upload: each the contract's status, JSON HTTPError.

    Args:
        c: the checker (with a token, the 401s are checked; without one, `bad token` is skipped).
    """
    route = c.route
    if c.token:
        for name, headers in (("no token", {}), ("bad token", {"Authorization": f"Bearer {c.token}x"})):
            _expect_error(c, name, 401, sample_request(route, c.model_id), "anyone reaching the URL is served "
                          "without the orchestrator's token", headers=headers)
    else:
        c.results.append(CheckResult("bad token", True, "no --token: the runner has no AUTH_TOKEN", skipped=True))
    if route.model_field and c.model_id:
        _expect_error(c, "wrong model id", 400, sample_request(route, c.model_id + "-not-this-one"),
                      "a job for another model is served by this one: the user pays for the wrong model")
    if route.multipart:
        bad = sample_request(route, c.model_id)
        bad.pop("files")
    else:
        fields = route.request_model.model_fields
        required = [n for n, f in fields.items() if f.is_required()]
        body = sample_request(route, c.model_id)["json"]
        bad = {"json": {k: v for k, v in body.items() if k not in required} if required else [body]}
    _expect_error(c, "bad input", route.schema_error_status, bad, "a malformed request is served")
    if 413 in route.error_statuses and route.max_file_bytes:
        big = sample_request(route, c.model_id)
        part = route.file_parts[0]
        name, _data, ctype = big["files"][part]
        big["files"] = {part: (name, b"\0" * (route.max_file_bytes + 1), ctype)}
        _expect_error(c, "oversized upload", 413, big, "an upload over the limit is accepted")


def check_burst(c: _Checker, burst: int) -> None:
    """`burst` concurrent good requests: each 200, or the JSON 500 `insufficient capacity` that makes the
    gateway retry elsewhere; /health keeps answering within 1 s meanwhile.

    Args:
        c: the checker. burst: how many requests at once.
    """
    kwargs = sample_request(c.route, c.model_id)
    with ThreadPoolExecutor(max_workers=burst + 1) as pool:
        futures = [pool.submit(c.post, **kwargs) for _ in range(burst)]
        time.sleep(0.2)
        t0 = time.monotonic()
        try:
            health_ok = c.client.get("/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            health_ok = False
        health_s = time.monotonic() - t0
        answers = [f.result() for f in futures]
    c.add("health while busy", [] if health_ok and health_s < 1 else [f"/health took {health_s:.2f} s"],
          "managed: probes time out (5 s) and after 2 the container is destroyed", f"{health_s * 1000:.0f} ms")
    problems, refused, consequence = [], 0, ""
    for r, error in answers:
        if r is None:
            problems.append(error)
            continue
        found = check_response(r, c.route)
        if r.status_code == 500 and not found and INSUFFICIENT_CAPACITY in r.json()["detail"]["msg"]:
            refused += 1
        elif r.status_code != 200 or found:
            problems += found or [f"status {r.status_code}: {r.text[:150]}"]
            consequence = consequence or _consequence(c.route, r.status_code, found)
    c.add("capacity refusal", problems[:3], consequence or SUSPENDED,
          f"{burst} at once: {burst - refused} served, {refused} refused with '{INSUFFICIENT_CAPACITY}'")


def run_checks(url: str, pipeline: str, *, token: str | None = None, timeout: float = 120.0, burst: int = 8,
               ready_timeout: float = 120.0) -> list[CheckResult]:
    """Check the runner at `url` for PIPELINE=`pipeline` as go-livepeer's AI worker will use it.

    Args:
        url: its base URL. pipeline: a pipeline of the table (not live-video-to-video).
        token: its AUTH_TOKEN (sent as go-livepeer sends the aiModels `token`; the 401s are checked too).
        timeout: seconds per request. burst: concurrent requests of the capacity check (0: skipped).
        ready_timeout: how long /health may stay LOADING or unreachable.
    Returns:
        One CheckResult per check, in order; after a /health failure only that one (go-livepeer stops there).
    Raises:
        KeyError: `pipeline` is not in the table (or has no batch route).
    """
    route = PIPELINES[pipeline].route
    if route is None:
        raise KeyError(f"{pipeline} has no batch route to check")
    with httpx.Client(base_url=url.rstrip("/"), timeout=timeout) as client:
        c = _Checker(client, route, token)
        if not check_health(c, ready_timeout):
            return c.results
        check_gets(c, pipeline)
        check_good_request(c)
        if route.streams:
            check_good_request(c, stream=True)
        check_refusals(c)
        if burst > 0:
            check_burst(c, burst)
    return c.results
