"""The app factory: one runner behind the go-livepeer wire contract.

`create_app` only registers things: error handlers that always answer JSON (contract 4.1, Q19), the plain
GET routes (answered on the event loop at once, never behind busy job threads), the generate route
(`request_path.RequestPath`), a JSON 500 on every other Livepeer generate path (Q20), and the OpenAPI
document (`openapi.py`). Each path also answers with a trailing slash, as upstream's routes do.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import nvml, openapi, schemas
from .auth import WrongTokenWarning
from .errors import RunnerError, SchemaInvalid, error_response, runner_error_response
from .host import RunnerHost
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import StatusCounter
from .pipelines import PIPELINES
from .request_path import RequestPath
from .runner import Runner
from .settings import RunnerSettings

log = logging.getLogger("runner_sdk")
DOCS_ASSETS = "/docs-assets"


def create_app(runner_cls: type[Runner], settings: RunnerSettings, preflight_error: str | None = None) -> FastAPI:
    """A FastAPI app serving `runner_cls` as configured by `settings`; the model loads in the background
    once the server starts (lifespan), while /health says LOADING.

    Args:
        runner_cls: the Runner subclass; its `route` is the generate route served.
        settings: PIPELINE, MODEL_ID, capacity, auth token... (RunnerSettings).
        preflight_error: why the runner can never serve (`preflight.environment_problems`): /health answers
            ERROR with it from the first answer and the model is not loaded.
    Returns:
        The app; `app.state.host` is its RunnerHost (state, capacity, metrics, runner).
    """
    host = RunnerHost(runner_cls, settings, preflight_error)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        host.start()
        yield
        host.stop()

    app = FastAPI(title="Livepeer AI Runner", description=f"{settings.pipeline} runner for {settings.model_id}",
                  version=settings.version, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.host = host
    _error_handlers(app, runner_cls)
    _plain_routes(app, host)
    _docs(app)
    _generate_routes(app, host)
    app.openapi = lambda: openapi.document(app, runner_cls.route)  # type: ignore[method-assign]
    app.add_middleware(StatusCounter, metrics=host.metrics, path=runner_cls.route.path)
    return app


def _error_handlers(app: FastAPI, runner_cls: type[Runner]) -> None:
    @app.exception_handler(RunnerError)
    async def _runner_error(req: Request, exc: RunnerError):
        # Every refusal says why in the log (uvicorn's access line only has the status).
        why = exc.msg
        if isinstance(exc, SchemaInvalid) and exc.errors:  # which field, not only "validation error"
            first = exc.errors[0]
            why = f"{why}: {'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg')}"
        log.warning("%s %s refused: %d %s", req.method, req.url.path, exc.status, why)
        return runner_error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_req: Request, exc: StarletteHTTPException):
        # Framework 404/405 on paths go-livepeer never calls: keep FastAPI's shape, but always JSON.
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception):
        log.exception("unhandled error: %s", exc)
        return error_response(500, runner_cls.error_message)


def _plain_routes(app: FastAPI, host: RunnerHost) -> None:
    s = host.settings
    identity = {"pipeline": s.pipeline, "model_id": s.model_id}

    def health() -> Response:
        status = host.health_status()
        body = {"status": status}
        if status == "ERROR":
            body["error"] = host.error
        return JSONResponse(body)

    def version() -> Response:
        return JSONResponse({**identity, "version": s.version})

    def hardware_info() -> Response:
        return JSONResponse({**identity, "gpu_info": {k: v.model_dump() for k, v in nvml.gpu_info().items()}})

    def hardware_stats() -> Response:
        return JSONResponse({**identity, "gpu_stats": {k: v.model_dump() for k, v in nvml.gpu_stats().items()}})

    def runner_info() -> Response:
        return JSONResponse(host.info())

    warn = WrongTokenWarning(s)
    for path, fn, model in [("/health", health, schemas.HealthCheck), ("/version", version, schemas.Version),
                            ("/hardware/info", hardware_info, schemas.HardwareInformation),
                            ("/hardware/stats", hardware_stats, schemas.HardwareStats),
                            ("/runner/info", runner_info, None)]:
        endpoint = _async(fn, warn)
        op = fn.__name__
        app.add_api_route(path, endpoint, methods=["GET"], response_model=model, operation_id=op,
                          summary=op.replace("_", " ").title())
        app.add_api_route(path + "/", endpoint, methods=["GET"], include_in_schema=False)

    def metrics() -> Response:
        return Response(host.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    for path in ("/metrics", "/metrics/"):
        app.add_api_route(path, _async(metrics), methods=["GET"], include_in_schema=False)


def _docs(app: FastAPI) -> None:
    """/docs from Swagger UI assets served by the runner itself (the `swagger-ui-bundle` package), so it works
    on a host without Internet; FastAPI's CDN page when the package is missing."""
    from fastapi.openapi.docs import get_swagger_ui_html

    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:  # pragma: no cover - a pinned dependency
        swagger_ui_path = None
    assets = {}
    if swagger_ui_path is not None:
        from fastapi.staticfiles import StaticFiles

        app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")
        assets = {"swagger_js_url": f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                  "swagger_css_url": f"{DOCS_ASSETS}/swagger-ui.css",
                  "swagger_favicon_url": f"{DOCS_ASSETS}/favicon-32x32.png"}

    async def docs(_request: Request) -> Response:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs", **assets)

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)


def _generate_routes(app: FastAPI, host: RunnerHost) -> None:
    route = host.runner_cls.route
    generate = RequestPath(host)

    async def endpoint(request: Request) -> Response:
        return await generate(request)

    app.add_api_route(
        route.path, endpoint, methods=["POST"], response_model=route.response_model,
        responses=openapi.error_responses(route), operation_id=route.operation_id, summary=route.summary,
        description=route.description, tags=["generate"],
        openapi_extra={"requestBody": openapi.request_body(route), "security": [{"HTTPBearer": []}]})
    app.add_api_route(route.path + "/", endpoint, methods=["POST"], include_in_schema=False)

    # Other Livepeer generate paths: a JSON 500 that names the mix-up, never a 404 (Q20).
    for row in PIPELINES.values():
        if row.path == route.path:
            continue

        async def not_served(_request: Request, _pipeline: str = row.name) -> Response:
            return error_response(500, f"pipeline {_pipeline} not served (serving {host.settings.pipeline})")

        app.add_api_route(row.path, not_served, methods=["POST"], include_in_schema=False)
        app.add_api_route(row.path + "/", not_served, methods=["POST"], include_in_schema=False)


def _async(fn, before=None):
    """An async endpoint around `fn`, so it answers on the event loop, not in the thread pool."""
    async def endpoint(request: Request) -> Response:
        if before is not None:
            before(request)
        return fn()

    endpoint.__name__ = fn.__name__
    return endpoint
