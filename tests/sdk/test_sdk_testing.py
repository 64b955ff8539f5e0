"""runner_sdk.testing and runner_sdk.conformance: the helpers a custom-runner author tests with.

The conformance checker must pass on runners the SDK serves, and must FAIL on answers go-livepeer could not
read: the pure response checker on constructed responses, and the request battery against a bare server that
breaks the contract in several ways."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
import uvicorn
from fakes import FakeAudioRunner, FakeLLMRunner, runner
from pydantic import Field
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route as StarletteRoute

from runner_sdk import Job, Runner, RunnerOptions, routes, schemas
from runner_sdk.conformance import assert_conformant, check_conformance, check_response, sse_problems
from runner_sdk.testing import free_port, serve, server_fixture, settings_for

JSON = {"content-type": "application/json"}
T2I, A2T, LLM = routes.TEXT_TO_IMAGE, routes.AUDIO_TO_TEXT, routes.LLM
GOOD_IMAGES = {"images": [{"url": "data:image/png;base64,AAAA", "seed": 3, "nsfw": False}]}
MSG = {"messages": [{"role": "user", "content": "hi"}]}


def answer(status: int, body: object = None, *, text: str | None = None, ctype: str = "application/json"):
    content = text.encode() if text is not None else json.dumps(body).encode()
    return httpx.Response(status, headers={"content-type": ctype}, content=content)


def image(**media) -> dict:
    return {"images": [{**GOOD_IMAGES["images"][0], **media}]}


# --- the pure response checker --------------------------------------------------------------------------


@pytest.mark.parametrize("route, response", [
    (T2I, answer(200, GOOD_IMAGES)),
    (T2I, answer(200, {**GOOD_IMAGES, "extra": [1.5]})),  # unknown keys: Go ignores them
    (T2I, answer(400, {"detail": {"msg": "Prompt must be provided."}})),
    (T2I, answer(500, {"detail": {"msg": "insufficient capacity: all slots are busy"}})),
    (T2I, answer(422, {"detail": [{"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"}]})),
    (A2T, answer(413, {"detail": {"msg": "File size exceeds limit."}})),
    (A2T, answer(200, {"text": "hi", "chunks": [{"timestamp": [0, 1.5], "text": "hi"}]})),
    (LLM, answer(400, {"detail": {"msg": "Invalid request: messages: Field required"}})),
])
def test_response_checker_accepts_contract_answers(route, response):
    assert check_response(response, route) == []


@pytest.mark.parametrize("route, response, says", [
    (T2I, answer(500, text="Internal Server Error", ctype="text/plain; charset=utf-8"), "not JSON"),
    (T2I, answer(200, image(seed=3.0)), "seed"),
    (T2I, answer(200, image(seed="3")), "seed"),
    (T2I, answer(200, image(seed=2**64)), "64 bits"),
    (T2I, answer(200, image(nsfw=0)), "nsfw"),
    (T2I, answer(200, {"images": [{"url": "x", "seed": 1}]}), "nsfw"),  # a required field missing
    (T2I, answer(200, text='{"images": [{"url": "x", "seed": 1, "nsfw": false, "score": NaN}]}'), "NaN"),
    (T2I, answer(503, {"detail": {"msg": "busy"}}), "status 503 not allowed"),
    (T2I, answer(429, {"detail": {"msg": "slow down"}}), "status 429 not allowed"),
    (T2I, answer(404, {"detail": "Not Found"}), "status 404 not allowed"),
    (T2I, answer(413, {"detail": {"msg": "File size exceeds limit."}}), "status 413 not allowed"),
    (LLM, answer(422, {"detail": [{"loc": ["body"], "msg": "x", "type": "y"}]}), "status 422 not allowed"),
    (T2I, answer(500, {"detail": "boom"}), "not an HTTPError"),
    (T2I, answer(400, {"error": "bad prompt"}), "not an HTTPError"),
    (T2I, answer(401, {"detail": {"message": "no"}}), "not an HTTPError"),
    (T2I, answer(422, {"detail": {"msg": "invalid"}}), "no detail list"),
    (T2I, answer(422, {"detail": [{"loc": "body", "msg": "x", "type": "y"}]}), "not a validation error"),
    (T2I, answer(400, text="{not json", ctype="application/json"), "not JSON"),
    (T2I, answer(200, text="data: {}\n\ndata: [DONE]\n\n", ctype="text/event-stream"), "not JSON"),
])
def test_response_checker_reports_answers_go_livepeer_cannot_read(route, response, says):
    problems = check_response(response, route)
    assert problems and says in problems[0], problems


def _chunk(content: str, finish: str = "", **changes) -> str:
    chunk = {"id": "c", "model": "m", "created": 1, "choices": [{"index": 0, "finish_reason": finish,
             "delta": {"role": "assistant", "content": content}}],
             "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}, **changes}
    return "data: " + json.dumps(chunk) + "\n\n"


GOOD_STREAM = _chunk("Hi") + _chunk("", "stop") + "data: [DONE]\n\n"


def test_sse_checker_accepts_a_well_framed_stream():
    assert sse_problems(GOOD_STREAM, LLM) == []
    assert check_response(answer(200, text=GOOD_STREAM, ctype="text/event-stream; charset=utf-8"), LLM) == []


@pytest.mark.parametrize("stream, says", [
    (_chunk("Hi") + _chunk("", "stop"), "[DONE]"),                            # no [DONE]
    (_chunk("Hi") + _chunk("", "stop") + "data: [DONE]", "blank line"),       # unterminated last event
    (_chunk("Hi") + ": keep-alive\n\n" + _chunk("", "stop") + "data: [DONE]\n\n", "not 'data: ...'"),
    ("data: [DONE]\n\n" + _chunk("", "stop") + "data: [DONE]\n\n", "after"),
    ("data: [DONE]\n\n", "no chunk"),
    (_chunk("Hi", created=1.5) + _chunk("", "stop") + "data: [DONE]\n\n", "created"),   # float for a Go int
    (_chunk("Hi", "stop") + _chunk("", "stop") + "data: [DONE]\n\n", "finish_reason"),
    (_chunk("Hi") + _chunk("") + "data: [DONE]\n\n", "finish_reason"),
    ("data: not json\n\ndata: [DONE]\n\n", "not JSON"),
])
def test_sse_checker_reports_broken_streams(stream, says):
    problems = check_response(answer(200, text=stream, ctype="text/event-stream"), LLM)
    assert problems and says in problems[0], problems


def test_response_checker_takes_list_valued_headers():
    """schemathesis' Response keeps each header as a list of values."""
    class Listy:
        status_code, headers, content = 200, {"content-type": ["application/json"]}, json.dumps(GOOD_IMAGES).encode()

    assert check_response(Listy(), T2I) == []
    Listy.content = json.dumps(image(seed=1.5)).encode()
    assert check_response(Listy(), T2I)


# --- the battery against SDK-served runners ---------------------------------------------------------------


class ChatRunner(FakeLLMRunner):
    """The fake LLM, also answering without `stream` (one JSON response)."""

    def predict(self, request: schemas.LLMRequest, job: Job):
        chunks = super().predict(request, job)
        if request.stream:
            return chunks
        *_, last = chunks
        last.choices[0].message, last.choices[0].delta = schemas.LLMMessage(role="assistant", content="Hi"), None
        return last


@pytest.mark.parametrize("runner_cls, kwargs, token", [
    (runner(), {"json": {"prompt": "a cat", "width": 8, "height": 8, "seed": 5}}, ""),
    (FakeAudioRunner, {"files": {"audio": ("a.wav", b"RIFF\x00\x00", "audio/wav")}, "data": {"return_timestamps": "false"}},
     "s3cret"),
    (ChatRunner, {"json": MSG}, "s3cret"),
], ids=["json", "multipart+auth", "streaming+auth"])
def test_battery_passes_on_sdk_served_runners(runner_cls, kwargs, token):
    with serve(runner_cls, model_id="acme/model", auth_token=token) as srv:
        assert check_conformance(srv.url, runner_cls.route, auth_token=token or None, **kwargs) == []
        assert_conformant(srv.url, runner_cls.route, auth_token=token or None, **kwargs)
        served = [line for line in httpx.get(srv.url + "/metrics").text.splitlines()
                  if line.startswith("runner_responses_total")]
    # it really sent the battery: the valid request, the schema error, the model mismatch (and the 401s)
    assert any('status="200"' in s for s in served) and any('status="400"' in s for s in served), served
    assert any('status="401"' in s for s in served) == bool(token), served


def test_battery_reports_what_a_runner_gets_wrong():
    """An SDK-served runner cannot break the wire shapes, but it can fail the author's valid request or be
    misconfigured; the battery names the check that found each problem."""
    with serve(runner(inject="crash"), model_id="acme/model") as srv:
        problems = check_conformance(srv.url, T2I, json={"prompt": "x", "width": 8, "height": 8},
                                     auth_token="expected-but-unset")
    assert any(p.startswith("valid request: status 500, expected 200") for p in problems), problems
    assert any(p.startswith("no bearer token: status 200, expected 401") or
               p.startswith("no bearer token: status 500, expected 401") for p in problems), problems
    with pytest.raises(ValueError, match="multipart"):
        check_conformance("http://127.0.0.1:9", A2T, json={})
    with pytest.raises(ValueError, match="JSON"):
        check_conformance("http://127.0.0.1:9", T2I, files={"image": b""})


# --- the battery against a server that breaks the contract -----------------------------------------------


def _broken_app() -> Starlette:
    identity = {"pipeline": "text-to-image", "model_id": "acme/model"}

    async def health(_):
        return JSONResponse({"status": "READY"})  # not a status go-livepeer knows

    async def version(_):
        return JSONResponse({**identity, "version": "latest"})

    async def hardware(request):
        key = "gpu_info" if request.url.path.endswith("info") else "gpu_stats"
        return JSONResponse({**identity, key: {}})

    async def generate(request):
        body = await request.json()
        if not isinstance(body, dict) or "prompt" not in body:
            return JSONResponse({"error": "prompt missing"}, status_code=400)
        if body.get("model_id"):
            return PlainTextResponse("wrong model", status_code=400)
        return JSONResponse({"images": [{"url": "data:,", "seed": 1.0, "nsfw": False}]})

    async def unknown(_):
        return Response("Not Found", status_code=404, media_type="text/plain")

    return Starlette(routes=[
        StarletteRoute("/health", health), StarletteRoute("/version", version),
        StarletteRoute("/hardware/info", hardware), StarletteRoute("/hardware/stats", hardware),
        StarletteRoute("/text-to-image", generate, methods=["POST"]),
        StarletteRoute("/{path:path}", unknown, methods=["GET", "POST"]),
    ])


@pytest.fixture
def broken_server():
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_broken_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_battery_fails_a_server_that_breaks_the_contract(broken_server):
    problems = check_conformance(broken_server, T2I, json={"prompt": "x"})
    checks = {p.split(": ", 1)[0] for p in problems}
    assert checks == {"GET /health", "GET /version", "valid request", "schema error", "model mismatch",
                      "POST /image-to-image (a pipeline not served)"}, problems
    text = "\n".join(problems)
    assert "seed" in text and "valid integer" in text           # 200 with "seed": 1.0
    assert "status 400, expected 422" in text                   # schema error as a 400
    assert "content-type 'text/plain" in text                   # plain-text 400 and 404
    assert "status 404 not" in text or "status 404, expected 500" in text
    with pytest.raises(AssertionError, match="outside the contract"):
        assert_conformant(broken_server, T2I, json={"prompt": "x"})


# --- serve / server_fixture / settings_for ---------------------------------------------------------------


class EchoOptions(RunnerOptions):
    echo_prefix: str = Field("", description="ECHO_PREFIX")


class EchoRunner(Runner[schemas.TextToSpeechParams, str]):
    """A JSON route with no required field (TTS): answers a WAV data URL whose name carries the text."""

    route = routes.TEXT_TO_SPEECH
    Options = EchoOptions

    def decode(self, request: schemas.TextToSpeechParams) -> str:
        return self.options.echo_prefix + request.text

    def predict(self, text: str, job: Job) -> schemas.AudioResponse:
        return schemas.AudioResponse(audio=schemas.MediaURL(url=f"data:audio/wav;name={text},"))


def test_settings_for_names_the_routes_pipeline():
    s = settings_for(EchoRunner)
    assert (s.pipeline, s.model_id, s.device, s.auth_token) == ("text-to-speech", "test/model", "cpu", "")
    assert settings_for(FakeAudioRunner, capacity=3, model_id="a/b").capacity == 3


def test_serve_sets_options_without_the_environment(monkeypatch):
    monkeypatch.setenv("ECHO_PREFIX", "env:")
    with serve(EchoRunner, options={"echo_prefix": "opt:"}) as srv:
        r = httpx.post(srv.url + "/text-to-speech", json={"text": "hi"})
        assert r.json() == {"audio": {"url": "data:audio/wav;name=opt:hi,"}}
        assert type(srv.host.runner).__name__ == "EchoRunner"
        assert check_conformance(srv.url, EchoRunner.route, json={"text": "hi"}) == []
    with serve(EchoRunner, settings_for(EchoRunner, model_id="x/y"), capacity=2) as srv:  # settings + overrides
        assert srv.host.settings.capacity == 2 and srv.host.settings.model_id == "x/y"
        assert httpx.post(srv.url + "/text-to-speech", json={"text": "hi"}).json()["audio"]["url"].endswith("env:hi,")


def _prepare(folder):
    (folder / "weights.bin").write_bytes(b"w")
    return {"model_id": "acme/prepared"}


echo_server = pytest.fixture(scope="module")(server_fixture(EchoRunner, prepare=_prepare, options={}))


def test_server_fixture_serves_for_the_fixtures_life(echo_server):
    assert httpx.get(echo_server.url + "/health").json()["status"] == "IDLE"
    s = echo_server.host.settings
    assert s.model_id == "acme/prepared" and (s.model_dir / "weights.bin").read_bytes() == b"w"
