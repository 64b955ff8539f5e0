"""The app factory: one runner behind the go-livepeer wire contract.

Every generate request goes: auth -> parse -> admit (or 'insufficient capacity') -> wait for load and a
slot (a disconnect gives the place back) -> check -> predict on a job thread -> encode. Every answer is
JSON with a status the route allows (contract 4.2); SSE only for a streaming route after its first chunk.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pydantic
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import hardware, schemas
from .errors import (
    JobCancelled,
    RunnerError,
    SchemaInvalid,
    error_response,
    is_out_of_memory,
    runner_error_response,
    validation_errors,
)
from .host import RunnerHost
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .multipart import MultipartError, is_multipart, parse_multipart
from .routes import LIVEPEER_GENERATE_PATHS, Route
from .runner import Job, Runner
from .settings import RunnerSettings

log = logging.getLogger("runner_sdk")

MAX_JSON_BYTES = 8 * 1024 * 1024


class _Gone(Exception):
    """The client disconnected; nobody will read an answer."""


def create_app(runner_cls: type[Runner], settings: RunnerSettings) -> FastAPI:
    host = RunnerHost(runner_cls, settings)
    route: Route = runner_cls.route

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        host.start()
        yield
        host.executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="Livepeer AI Runner", description=f"{settings.pipeline} runner for {settings.model_id}",
                  version=settings.version, lifespan=lifespan)
    app.state.host = host

    # --- always-JSON error handling (Q19, 4.1) ----------------------------------------------------
    @app.exception_handler(RunnerError)
    async def _runner_error(_req: Request, exc: RunnerError):
        return runner_error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_req: Request, exc: StarletteHTTPException):
        # Framework 404/405 on paths go-livepeer never calls: keep FastAPI's shape, but always JSON.
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception):
        log.exception("unhandled error: %s", exc)
        return error_response(500, runner_cls.error_message)

    # --- plain routes -----------------------------------------------------------------------------
    def health() -> Response:
        status = host.health_status()
        body = {"status": status}
        if status == "ERROR":
            body["error"] = host.error
        return JSONResponse(body)

    def version() -> Response:
        return JSONResponse({"pipeline": settings.pipeline, "model_id": settings.model_id,
                             "version": settings.version})

    def hardware_info() -> Response:
        info = {k: v.model_dump() for k, v in hardware.gpu_info().items()}
        return JSONResponse({"pipeline": settings.pipeline, "model_id": settings.model_id, "gpu_info": info})

    def hardware_stats() -> Response:
        stats = {k: v.model_dump() for k, v in hardware.gpu_stats().items()}
        return JSONResponse({"pipeline": settings.pipeline, "model_id": settings.model_id, "gpu_stats": stats})

    def metrics() -> Response:
        return Response(host.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    def runner_info() -> Response:
        return JSONResponse(host.info())

    plain = [
        ("/health", health, schemas.HealthCheck, "health"),
        ("/version", version, schemas.Version, "version"),
        ("/hardware/info", hardware_info, schemas.HardwareInformation, "hardware_info"),
        ("/hardware/stats", hardware_stats, schemas.HardwareStats, "hardware_stats"),
        ("/runner/info", runner_info, None, "runner_info"),
    ]
    for path, fn, model, op in plain:
        # Async wrappers so these answer on the event loop at once, never behind busy worker threads.
        endpoint = _async(fn, lambda req: _warn_on_wrong_token(req, settings))
        app.add_api_route(path, endpoint, methods=["GET"], response_model=model, operation_id=op,
                          summary=op.replace("_", " ").title())
        app.add_api_route(path + "/", endpoint, methods=["GET"], include_in_schema=False)
    for path in ("/metrics", "/metrics/"):
        app.add_api_route(path, _async(metrics), methods=["GET"], include_in_schema=False)

    # --- the generate route -----------------------------------------------------------------------
    async def generate(request: Request) -> Response:
        t0 = time.perf_counter()
        _check_auth(request, settings, route)
        tmpdir = Path(tempfile.mkdtemp(prefix="runner-")) if route.multipart else None
        try:
            body = await _parse(request, route, tmpdir, settings.model_id)
            return await _execute(request, body, t0)
        finally:
            if tmpdir is not None:
                shutil.rmtree(tmpdir, ignore_errors=True)

    has_check = runner_cls.check is not Runner.check  # skip the thread hop when there is nothing to check

    async def _execute(request: Request, body: pydantic.BaseModel, t0: float) -> Response:
        watcher = asyncio.ensure_future(_wait_disconnect(request))
        job = Job()
        try:
            # A caller's error is a 400 before the request queues or takes a slot (a full runner must not
            # turn it into `insufficient capacity`, which makes the gateway retry the bad request elsewhere).
            # While the model loads there is no runner to ask yet: those requests are checked in their slot.
            loaded = host.runner if host.ready else None
            if has_check and loaded is not None:
                await _race(asyncio.to_thread(loaded.check, body), watcher)
            host.capacity.admit()
            host._sync_gauges()
            runner = await _race(host.acquire(), watcher)  # holds a slot from here
            queue_s = time.perf_counter() - t0
            if has_check and loaded is None:
                try:
                    await _race(asyncio.to_thread(runner.check, body), watcher)
                except BaseException:
                    host.release()
                    raise
            if runner.wants_stream(body):
                return await _stream(runner, body, job, watcher, queue_s)
            fut = host.run_in_slot(host.measured, runner.predict, body, job)
            try:
                result = await _race(asyncio.shield(fut), watcher)
            except _Gone:
                job.cancel()  # stops at its next step; the slot frees when the thread returns
                # Nobody awaits it now: take its JobCancelled so asyncio does not log it as never retrieved.
                fut.add_done_callback(lambda f: f.cancelled() or f.exception())
                raise
            host.requests_served += 1
            with job.stage("encode_json"):
                payload = result.model_dump(mode="json")
                response = JSONResponse(payload)
            _observe(job, queue_s, t0, response)
            return response
        except _Gone:
            return error_response(500, "client disconnected")
        except JobCancelled:
            return error_response(500, "request cancelled")
        except asyncio.CancelledError:
            # The server cancels what is still running when its shutdown grace period ends. Stop the job and
            # still answer JSON: uvicorn's own fallback is a plain-text 500, which go-livepeer cannot parse.
            job.cancel()
            return error_response(500, "runner shutting down")
        except RunnerError:
            raise
        except Exception as exc:
            if is_out_of_memory(exc):
                log.error("out of memory: %s", exc)
                host.on_oom()
                return error_response(500, runner_cls.oom_message)
            log.exception("%s failed: %s", route.path, exc)
            return error_response(500, runner_cls.error_message)
        finally:
            if not watcher.done():
                watcher.cancel()

    async def _stream(runner: Runner, body, job: Job, watcher: asyncio.Future, queue_s: float) -> Response:
        """SSE: the first chunk is produced before any byte is sent, so an early failure is still JSON."""
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue = asyncio.Queue()
        first: asyncio.Future = loop.create_future()

        def pump() -> None:
            try:
                iterator: Iterator = iter(runner.predict(body, job))
                head = next(iterator, None)
                loop.call_soon_threadsafe(_resolve, first, ("ok", head))
                if head is None:
                    return
                for chunk in iterator:
                    loop.call_soon_threadsafe(chunks.put_nowait, ("chunk", chunk))
                loop.call_soon_threadsafe(chunks.put_nowait, ("end", None))
            except BaseException as exc:  # noqa: BLE001 - reported to the stream, never lost
                if not first.done():
                    loop.call_soon_threadsafe(_resolve, first, ("error", exc))
                loop.call_soon_threadsafe(chunks.put_nowait, ("error", exc))

        host.run_in_slot(host.measured, pump)
        try:
            kind, head = await _race(asyncio.shield(first), watcher)
        except _Gone:
            job.cancel()
            raise
        if kind == "error":
            raise head
        watcher.cancel()  # from here Starlette's StreamingResponse watches for the disconnect

        async def events() -> AsyncIterator[bytes]:
            try:
                if head is not None:
                    yield _sse(head)
                    while True:
                        kind, item = await chunks.get()
                        if kind == "chunk":
                            yield _sse(item)
                            continue
                        if kind == "error":
                            log.error("stream failed after it started: %r", item)
                            final = runner.stream_error_chunk(body, item)
                            if final is not None:
                                yield _sse(final)
                        break
                yield b"data: [DONE]\n\n"
                host.requests_served += 1
            finally:
                job.cancel()  # no-op when finished; stops generation at once when the client went away

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    def _observe(job: Job, queue_s: float, t0: float, response: Response) -> None:
        total = time.perf_counter() - t0
        host.metrics.latency.labels(route.path).observe(total)
        host.metrics.stage.labels("queue").observe(queue_s)
        for name, seconds in job.timings.items():
            host.metrics.stage.labels(name).observe(seconds)
        parts = [f"queue;dur={queue_s * 1000:.3f}"]
        parts += [f"{name};dur={s * 1000:.3f}" for name, s in job.timings.items()]
        parts.append(f"total;dur={total * 1000:.3f}")
        response.headers["Server-Timing"] = ", ".join(parts)

    responses: dict[int | str, dict[str, Any]] = {}
    for status in route.error_statuses:
        model = schemas.HTTPValidationError if status == 422 else schemas.HTTPError
        responses[status] = {"model": model, "description": _REASONS.get(status, "Error")}
    app.add_api_route(
        route.path, generate, methods=["POST"], response_model=route.response_model, responses=responses,
        operation_id=route.operation_id, summary=route.summary, description=route.description,
        tags=["generate"], openapi_extra={"requestBody": _request_body(route), "security": [{"HTTPBearer": []}]})
    app.add_api_route(route.path + "/", generate, methods=["POST"], include_in_schema=False)

    # Other Livepeer generate paths: a JSON 500 that names the mix-up, never a 404 (Q20).
    for pipeline, path in LIVEPEER_GENERATE_PATHS.items():
        if path == route.path:
            continue

        async def not_served(_request: Request, _pipeline: str = pipeline) -> Response:
            return error_response(500, f"pipeline {_pipeline} not served (serving {settings.pipeline})")

        app.add_api_route(path, not_served, methods=["POST"], include_in_schema=False)
        app.add_api_route(path + "/", not_served, methods=["POST"], include_in_schema=False)

    app.openapi = lambda: _openapi(app, route)  # type: ignore[method-assign]
    app.add_middleware(_StatusCounter, host=host, path=route.path)
    return app


# --- helpers ----------------------------------------------------------------------------------------

_REASONS = {400: "Bad Request", 401: "Unauthorized", 413: "Request Entity Too Large",
            415: "Unsupported Media Type", 422: "Validation Error", 500: "Internal Server Error"}


def _async(fn, before=None):
    async def endpoint(request: Request) -> Response:
        if before is not None:
            before(request)
        return fn()

    endpoint.__name__ = fn.__name__
    return endpoint


def _resolve(fut: asyncio.Future, value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _sse(chunk: pydantic.BaseModel) -> bytes:
    return b"data: " + chunk.model_dump_json().encode() + b"\n\n"


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, credential = header.partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else None


def _check_auth(request: Request, settings: RunnerSettings, route: Route) -> None:
    if not settings.auth_token:
        return
    given = _bearer(request)
    # Constant-time comparison (Q26); the token is never logged.
    if given is None or not hmac.compare_digest(given.encode(), settings.auth_token.encode()):
        raise RunnerError(401, route.auth_message, headers={"WWW-Authenticate": "Bearer"})


_warned_wrong_token = False


def _warn_on_wrong_token(request: Request, settings: RunnerSettings) -> None:
    """go-livepeer sends its token to /health too; those routes accept anything but say so once (5)."""
    global _warned_wrong_token
    if _warned_wrong_token or not settings.auth_token or "authorization" not in request.headers:
        return
    given = _bearer(request)
    if given is None or not hmac.compare_digest(given.encode(), settings.auth_token.encode()):
        _warned_wrong_token = True
        log.warning("a bearer token that does not match AUTH_TOKEN reached %s: jobs from that caller will "
                    "get 401 (check the aiModels.json token)", request.url.path)


async def _wait_disconnect(request: Request) -> None:
    """Returns when the client goes away (only after the body has been read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def _race(awaitable, watcher: asyncio.Future):
    """Await `awaitable`, raising _Gone if the client disconnects first (the awaitable is cancelled)."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        return task.result()
    task.cancel()
    with suppress(asyncio.CancelledError, Exception):
        await task
    raise _Gone()


async def _read_limited(request: Request, limit: int) -> tuple[bytes, bool]:
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


async def _parse(request: Request, route: Route, tmpdir: Path | None, model_id: str) -> pydantic.BaseModel:
    status = route.schema_error_status

    def invalid(errors: list[dict]) -> RunnerError:
        if status == 422:
            return SchemaInvalid(errors)
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"][1:]) or "body"
        return RunnerError(status, f"Invalid request: {where}: {first['msg']}")

    if route.multipart:
        if not is_multipart(request):
            raise invalid([{"type": "missing", "loc": ["body", p], "msg": "Field required", "input": None}
                           for p in route.file_parts])
        try:
            form = await parse_multipart(request, route.file_parts, tmpdir, route.max_file_bytes)
        except MultipartError as exc:
            raise RunnerError(400, str(exc)) from None
        missing = [p for p in route.file_parts if p not in form.files and p not in form.oversized]
        if missing:
            raise invalid([{"type": "missing", "loc": ["body", p], "msg": "Field required", "input": None}
                           for p in missing])
        data: dict[str, Any] = dict(form.fields)
        try:
            model = route.request_model.model_validate(data)
        except pydantic.ValidationError as exc:
            raise invalid(validation_errors(exc.errors())) from None
        if form.oversized:
            # Upstream's order (3.6): a model mismatch is a 400 before the size's 413.
            asked = getattr(model, "model_id", "")
            if asked and asked != model_id:
                raise RunnerError(400, f"pipeline configured with {model_id} but called with {asked}.")
            raise RunnerError(413, "File size exceeds limit.")
        model.__dict__["files"] = form.files  # file parts ride along, outside the validated fields
        return model

    ctype = request.headers.get("content-type", "")
    if ctype and "json" not in ctype.lower():
        raw, _ = await _read_limited(request, MAX_JSON_BYTES)
        raise invalid([{"type": "model_attributes_type", "loc": ["body"],
                        "msg": "Input should be a valid dictionary or object to extract fields from",
                        "input": raw[:200].decode("utf-8", "replace")}])
    raw, over = await _read_limited(request, MAX_JSON_BYTES)
    if over:
        # 413 is not in every route's status set: a caller error is a 400 everywhere.
        raise RunnerError(400, f"request body over {MAX_JSON_BYTES} bytes")
    try:
        data = json.loads(raw) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise invalid([{"type": "json_invalid", "loc": ["body", getattr(exc, "pos", 0)],
                        "msg": "JSON decode error", "input": {}}]) from None
    except RecursionError:
        # A few thousand nested brackets exhaust the decoder's stack: still the caller's malformed body.
        raise invalid([{"type": "json_invalid", "loc": ["body"],
                        "msg": "JSON nested too deeply", "input": {}}]) from None
    if data is None and route.schema_error_status != 422:
        data = {}
    try:
        return route.request_model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise invalid(validation_errors(exc.errors())) from None


def _request_body(route: Route) -> dict[str, Any]:
    if route.multipart:
        return {"content": {"multipart/form-data": {"schema": {"$ref": f"#/components/schemas/{route.body_schema_name}"}}},
                "required": True}
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{route.request_model.__name__}"}}},
            "required": True}


def _openapi(app: FastAPI, route: Route) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = doc.setdefault("components", {})
    found = components.setdefault("schemas", {})
    models = [schemas.HTTPError, schemas.HTTPValidationError, route.response_model]
    if not route.multipart:
        models.append(route.request_model)
    _, defs = models_json_schema([(m, "validation") for m in models], ref_template="#/components/schemas/{model}")
    found.update(defs.get("$defs", {}))
    if route.multipart:
        body = route.request_model.model_json_schema(ref_template="#/components/schemas/{model}")
        props = {p: {"type": "string", "format": "binary", "title": p.title()} for p in route.file_parts}
        props.update(body.get("properties", {}))
        found[route.body_schema_name] = {"properties": props, "type": "object",
                                         "required": list(route.file_parts), "title": route.body_schema_name}
    components["securitySchemes"] = {"HTTPBearer": {"type": "http", "scheme": "bearer"}}
    app.openapi_schema = doc
    return doc


class _StatusCounter:
    """Pure ASGI middleware (BaseHTTPMiddleware would break disconnect detection and streaming) that counts
    the generate route's responses by status for /metrics."""

    def __init__(self, app, host: RunnerHost, path: str):
        self.app, self.host, self.path = app, host, path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"].rstrip("/") or "/"

        async def counting_send(message):
            if message["type"] == "http.response.start" and path == self.path:
                self.host.metrics.responses.labels(path, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counting_send)
