"""`runner-sdk conformance URL --pipeline P`: passes against each reference runner (tiny synthetic weights),
fails naming the right check against small deliberately broken runners."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from runner_sdk.cli import main
from runner_sdk.pipelines import PIPELINES, runner_class, synthesize
from runner_sdk.testing import free_port, serve
from runner_sdk.worker_check import sample_png, sample_request, sample_wav

REFERENCE = ["text-to-image", "audio-to-text", "llm"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("worker-check-models")
    for pipeline in REFERENCE:
        synthesize(pipeline, PIPELINES[pipeline].demo_model_id, root, "tiny")
    return root


@pytest.mark.parametrize("pipeline", REFERENCE)
def test_conformance_passes_against_each_reference_runner(pipeline, model_dir, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WHISPER_MAX_NEW_TOKENS", "4")
    cls = runner_class(pipeline)
    with serve(cls, model_id=PIPELINES[pipeline].demo_model_id, model_dir=model_dir, auth_token="sekrit",
               capacity=1, queue_size=1) as srv:
        code = main(["conformance", srv.url, "--pipeline", pipeline, "--token", "sekrit", "--burst", "4"])
    out = capsys.readouterr().out
    assert code == 0, out
    for check in ("PASS health", "PASS version", "PASS good request", "PASS bad token", "PASS wrong model id",
                  "PASS bad input", "PASS capacity refusal"):
        assert check in out, out
    if pipeline == "llm":
        assert "PASS good request, stream" in out
    if pipeline == "audio-to-text":
        assert "PASS oversized upload" in out


def test_sample_media_are_valid():
    png = sample_png(16)
    assert png.startswith(b"\x89PNG") and png[16:24] == (16).to_bytes(4, "big") * 2
    assert sample_wav(0.1)[:4] == b"RIFF"
    for row in PIPELINES.values():
        if row.route is not None:
            kwargs = sample_request(row.route, "org/m")
            assert ("files" in kwargs) == row.route.multipart


# --- deliberately broken runners --------------------------------------------------------------------------


def _chunk(content: str, finish: str, choices: bool = True) -> str:
    choice = {"index": 0, "delta": {"role": "assistant", "content": content}, "finish_reason": finish}
    body = {"id": "x", "model": "org/m", "created": 1, "choices": [choice] if choices else [],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    return f"data: {json.dumps(body)}\n\n"


def _broken_app(flaw: str) -> Starlette:
    """A hand-written /llm runner, conformant but for `flaw`."""

    async def health(_r: Request) -> Response:
        if flaw == "plain-health":
            return PlainTextResponse("OK")
        return JSONResponse({"status": 1} if flaw == "health-status" else {"status": "IDLE"})

    async def version(_r: Request) -> Response:
        return JSONResponse({"pipeline": "llm", "model_id": "org/m", "version": "0.14.1"})

    async def hardware(_r: Request) -> Response:
        return JSONResponse({"pipeline": "llm", "model_id": "org/m", "gpu_info": {}})

    async def llm(request: Request) -> Response:
        body = await request.json() if request.headers.get("content-type") == "application/json" else {}
        if not isinstance(body, dict) or "messages" not in body:
            return JSONResponse({"detail": {"msg": "messages: Field required"}}, status_code=400)
        if body.get("model") not in (None, "", "org/m"):
            detail = "wrong model" if flaw == "string-detail" else {"msg": "wrong model"}
            return JSONResponse({"detail": detail}, status_code=400)
        empty = flaw == "empty-choices"
        if body.get("stream"):
            events = _chunk("Paris", "", not empty) + _chunk("", "stop", not empty)
            events += "" if flaw == "no-done" else "data: [DONE]\n\n"
            return StreamingResponse(iter([events]), media_type="text/event-stream")
        choice = {"index": 0, "message": {"role": "assistant", "content": "Paris"}, "finish_reason": "stop"}
        return JSONResponse({"id": "x", "model": "org/m", "created": 1, "choices": [] if empty else [choice],
                             "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    return Starlette(routes=[Route("/health", health), Route("/version", version),
                             Route("/hardware/info", hardware), Route("/llm", llm, methods=["POST"])])


@contextmanager
def _serving(app: Starlette) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.parametrize("flaw, check, says", [
    (None, None, None),
    ("plain-health", "FAIL health", "node crashes"),
    ("health-status", "FAIL health", "keeps polling"),
    ("string-detail", "FAIL wrong model id", "HTTPError"),
    ("no-done", "FAIL good request, stream", "[DONE]"),
    ("empty-choices", "FAIL good request", "choices[0]"),
])
def test_conformance_names_the_broken_check(flaw, check, says, capsys):
    with _serving(_broken_app(flaw)) as url:
        code = main(["conformance", url, "--pipeline", "llm", "--burst", "2", "--ready-timeout", "2"])
    out = capsys.readouterr().out
    if flaw is None:
        assert code == 0, out
        return
    assert code == 1, out
    lines = [line for line in out.splitlines() if line.startswith(check)]
    assert lines and says in lines[0], out
    assert "-> go-livepeer:" in lines[0]
    assert sum(line.startswith("FAIL") for line in out.splitlines()) >= 1
