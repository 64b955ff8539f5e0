"""LLM_BACKEND=openai against a fault-injecting fake OpenAI server (a real uvicorn server on 127.0.0.1 streaming
real SSE): an upstream that is down at start or dies later is LOADING in /health, never ERROR, and IDLE again
once it is back; its refusals keep go-livepeer's statuses (400 before any stream byte, 500 JSON, the error
chunk then [DONE] once streaming); usage stays exact when the server reports it only at the end; the API key
goes upstream as a bearer token and nowhere else. (The real vLLM server: tests/llm_backends.)"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from runner_sdk.testing import free_port, serve
from runners.llm import backend_openai
from runners.llm.backend_openai import upstream_base
from runners.llm.runner import LLMRunner

MODEL = "acme/chat-8b"
KEY = "sk-test-very-secret-4711"
WORDS = ["Hello", " from", " the", " fake"]
PROMPT_TOKENS = 11
WINDOW = 2048  # the context window the fake's model list says, as vLLM's does
CONTEXT_MSG = ("This model's maximum context length is 2048 tokens. However, you requested 100010 tokens "
               "(10 in the messages, 100000 in the completion).")
TIMEOUT = httpx.Timeout(30.0)  # a hung request fails the test instead of hanging it


def _sse(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def _chunk(content: str | None, finish: str | None = None, completion: int | None = None) -> dict:
    chunk: dict = {"id": "cmpl-1", "object": "chat.completion.chunk", "model": MODEL,
                   "choices": [{"index": 0, "delta": {} if content is None else {"content": content},
                                "finish_reason": finish}]}
    if completion is not None:
        chunk["usage"] = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": completion,
                          "total_tokens": PROMPT_TOKENS + completion}
    return chunk


class FakeUpstream:
    """An OpenAI-compatible server whose answers the test chooses (`mode`), recording what it was sent."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.mode = "ok"
        self.finish = "stop"
        self.models = [MODEL]
        self.seen: list[tuple[str, dict, dict | None]] = []  # (route, headers, body)
        self.aborted = threading.Event()
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        def models(request: Request):
            self.seen.append(("models", dict(request.headers), None))
            return {"object": "list", "data": [{"id": m, "object": "model", "max_model_len": WINDOW}
                                               for m in self.models]}

        @app.post("/v1/chat/completions")
        async def chat(request: Request):
            body = await request.json()
            self.seen.append(("chat", dict(request.headers), body))
            if self.mode in ("400", "500", "429"):
                msg = CONTEXT_MSG if self.mode == "400" else f"upstream says {self.mode}"
                return JSONResponse({"error": {"message": msg, "type": "Error", "code": int(self.mode)}},
                                    status_code=int(self.mode))
            return StreamingResponse(self.stream(self.mode), media_type="text/event-stream")

        return app

    async def stream(self, mode: str):
        usage_each = mode not in ("usage_at_end", "no_usage")
        yield _sse(_chunk("", completion=0 if usage_each else None) | {"choices": [
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]})
        if mode == "pings":  # a server (or proxy) that only keeps the connection alive: SSE comments
            try:
                while True:
                    yield b": ping\n\n"
                    await asyncio.sleep(0.02)
            finally:
                self.aborted.set()
        if mode == "endless":
            try:
                n = 0
                while True:
                    n += 1
                    yield _sse(_chunk(" word", completion=n))
                    await asyncio.sleep(0.02)
            finally:
                self.aborted.set()
        for i, word in enumerate(WORDS):
            if mode == "break" and i == 2:
                raise RuntimeError("the fake upstream dies mid-stream")
            yield _sse(_chunk(word, completion=i + 1 if usage_each else None))
        if mode != "no_finish":
            # The end-of-reply token: counted in the usage, no text (as vLLM does).
            yield _sse(_chunk("", self.finish, completion=len(WORDS) + 1 if usage_each else None))
        if mode == "usage_at_end":  # Ollama's way: one usage-only chunk after the finish chunk
            yield _sse({"id": "cmpl-1", "object": "chat.completion.chunk", "choices": [],
                        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": 9,
                                  "total_tokens": PROMPT_TOKENS + 9}})
        yield b"data: [DONE]\n\n"

    def start(self) -> FakeUpstream:
        config = uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="critical",
                                timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the fake upstream did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(timeout=15)
            self.server = None


@pytest.fixture(autouse=True)
def quick_poll(monkeypatch):
    monkeypatch.setattr(backend_openai, "POLL_INTERVAL_S", 0.1)


def runner_for(url: str, wait_ready: bool = True, **options):
    opts = {"llm_backend": "openai", "llm_upstream_url": url, "llm_upstream_model": MODEL, **options}
    return serve(LLMRunner, options=opts, model_id=MODEL, capacity=2, ready_timeout=60, wait_ready=wait_ready)


@pytest.fixture(scope="module")
def upstream():
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def runner(upstream):
    with runner_for(upstream.url, llm_upstream_api_key=KEY) as srv:
        yield srv
        srv.host.runner.backend.close()


@pytest.fixture(autouse=True)
def reset(request):
    if "upstream" in request.fixturenames:
        fake = request.getfixturevalue("upstream")
        fake.mode, fake.finish, fake.models = "ok", "stop", [MODEL]


def ask(srv, stream: bool, **body) -> httpx.Response:
    payload = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 16,
               "stream": stream, **body}
    return httpx.post(srv.url + "/llm", json=payload, timeout=TIMEOUT)


def events(r: httpx.Response) -> list[dict]:
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream"), r.text[:300]
    raw = r.content
    assert raw.endswith(b"data: [DONE]\n\n"), raw[-200:]
    return [json.loads(part.removeprefix(b"data: ")) for part in raw.split(b"\n\n")[:-2]]


def health(srv) -> dict:
    return httpx.get(srv.url + "/health", timeout=TIMEOUT).json()


def wait_for(predicate, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


# --- the request path ---------------------------------------------------------------------------------
def test_reply_with_exact_usage_and_what_goes_upstream(runner, upstream):
    r = ask(runner, False, temperature=0.5, top_p=0.9, top_k=20, seed=7)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["model"] == MODEL and data["choices"][0]["message"]["content"] == "".join(WORDS)
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"] == {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": 5, "total_tokens": 16}
    route, headers, body = upstream.seen[-1]
    assert route == "chat" and headers["authorization"] == f"Bearer {KEY}"
    assert body["model"] == MODEL and body["stream"] is True and body["max_tokens"] == 16
    assert (body["temperature"], body["top_p"], body["top_k"], body["seed"]) == (0.5, 0.9, 20, 7)
    assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    ask(runner, False)
    assert "top_k" not in upstream.seen[-1][2] and "seed" not in upstream.seen[-1][2]  # off: not sent


def test_stream_has_cumulative_usage_and_ends_with_finish_then_done(runner):
    got = events(ask(runner, True))
    assert "".join(e["choices"][0]["delta"]["content"] for e in got) == "".join(WORDS)
    assert [e["choices"][0]["finish_reason"] for e in got] == [""] * len(WORDS) + ["stop"]
    assert [e["usage"]["completion_tokens"] for e in got] == [1, 2, 3, 4, 5]
    assert all(e["usage"]["prompt_tokens"] == PROMPT_TOKENS for e in got)
    info = httpx.get(runner.url + "/runner/info", timeout=TIMEOUT).json()["runner"]
    assert info["backend"] == "openai" and info["active"] == 0 and info["tokens_generated"] >= 5
    assert info["upstream_url"] == runner.host.runner.backend.base and info["upstream_model"] == MODEL
    assert info["upstream_state"] == "serving" and info["context_len"] is None


@pytest.mark.parametrize("upstream_finish, ours", [("length", "length"), ("content_filter", "stop"),
                                                   ("tool_calls", "stop")])
def test_finish_reasons(runner, upstream, upstream_finish, ours):
    upstream.finish = upstream_finish
    assert ask(runner, False).json()["choices"][0]["finish_reason"] == ours
    assert events(ask(runner, True))[-1]["choices"][0]["finish_reason"] == ours


def test_usage_only_at_the_end_is_still_exact_at_the_end(runner, upstream):
    upstream.mode = "usage_at_end"
    final = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": 9, "total_tokens": PROMPT_TOKENS + 9}
    got = events(ask(runner, True))
    assert [e["usage"]["completion_tokens"] for e in got[:-1]] == [1, 2, 3, 4]  # counted meanwhile
    assert got[-1]["usage"] == final and got[-1]["choices"][0]["finish_reason"] == "stop"
    assert ask(runner, False).json()["usage"] == final


def test_no_usage_at_all_counts_content_chunks_and_says_so(runner, upstream, caplog):
    upstream.mode = "no_usage"
    got = events(ask(runner, True))
    assert [e["usage"]["completion_tokens"] for e in got] == [1, 2, 3, 4, 4]
    assert got[-1]["usage"]["prompt_tokens"] == 0 and got[-1]["choices"][0]["finish_reason"] == "stop"
    assert "sends no usage" in caplog.text


def test_upstream_400_is_our_400_before_any_stream_byte(runner, upstream):
    upstream.mode = "400"
    for stream in (True, False):
        r = ask(runner, stream, max_tokens=1000)
        assert r.status_code == 400 and r.headers["content-type"] == "application/json", r.text
        assert r.json() == {"detail": {"msg": CONTEXT_MSG}}


def test_max_tokens_beyond_the_advertised_window_is_400_without_asking_upstream(runner, upstream):
    asked = len(upstream.seen)
    for stream in (True, False):
        r = ask(runner, stream, max_tokens=WINDOW)
        assert r.status_code == 400 and "context window of 2048 tokens" in r.json()["detail"]["msg"], r.text
    assert not [route for route, _h, _b in upstream.seen[asked:] if route == "chat"]


@pytest.mark.parametrize("mode, words", [("500", "Internal server error"), ("429", "insufficient capacity")])
def test_upstream_failures_are_our_500_json(runner, upstream, mode, words):
    upstream.mode = mode
    for stream in (True, False):
        r = ask(runner, stream)
        assert r.status_code == 500 and r.headers["content-type"] == "application/json", r.text
        assert words in r.json()["detail"]["msg"]
    assert health(runner)["status"] == "IDLE"  # a failed request is not an unhealthy runner


@pytest.mark.parametrize("mode", ["break", "no_finish"])
def test_a_stream_that_breaks_ends_with_the_error_chunk_then_done(runner, upstream, mode):
    upstream.mode = mode
    got = events(ask(runner, True))
    assert got[-1]["choices"][0]["finish_reason"] == "error" and got[-1]["choices"][0]["delta"]["content"] == ""
    assert all(e["choices"][0]["finish_reason"] == "" for e in got[:-1]) and len(got) >= 2
    r = ask(runner, False)
    assert r.status_code == 500 and r.json()["detail"]["msg"] == LLMRunner.error_message
    wait_for(lambda: runner.host.runner.backend.active == 0)
    assert health(runner)["status"] == "IDLE"


def test_disconnect_closes_the_upstream_request(runner, upstream):
    upstream.mode = "endless"
    upstream.aborted.clear()
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1000, "stream": True}
    with httpx.stream("POST", runner.url + "/llm", json=body, timeout=TIMEOUT) as r:
        got = b""
        for part in r.iter_raw():
            got += part
            if got.count(b"\n\n") >= 3:
                break
    assert upstream.aborted.wait(30), "the upstream request was never closed"
    wait_for(lambda: runner.host.runner.backend.active == 0 and runner.host.capacity.in_flight == 0)


def test_disconnect_while_the_upstream_only_pings_frees_the_slot(runner, upstream):
    """Keep-alive comments carry no data: the runner still looks at the client at every line."""
    upstream.mode = "pings"
    upstream.aborted.clear()
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1000, "stream": True}
    with pytest.raises(httpx.ReadTimeout):  # nothing ever comes: the first chunk needs content
        with httpx.stream("POST", runner.url + "/llm", json=body, timeout=httpx.Timeout(30.0, read=1.0)) as r:
            r.read()
    assert upstream.aborted.wait(30), "the upstream request was never closed"
    wait_for(lambda: runner.host.runner.backend.active == 0 and runner.host.capacity.in_flight == 0)


def test_a_password_in_the_upstream_url_is_used_but_never_shown(upstream, caplog):
    caplog.set_level(logging.DEBUG)
    url = upstream.url.replace("http://", "http://operator:pw-4712@")
    with runner_for(url) as srv:
        assert ask(srv, False).status_code == 200
        assert upstream.seen[-1][1]["authorization"].startswith("Basic ")  # httpx sends the URL's credentials
        info = httpx.get(srv.url + "/runner/info", timeout=TIMEOUT).text
        srv.host.runner.backend.close()
    assert "pw-4712" not in info and "pw-4712" not in caplog.text
    assert json.loads(info)["runner"]["upstream_url"] == upstream.url + "/v1"


def test_the_key_goes_upstream_as_bearer_and_nowhere_else(upstream, caplog):
    caplog.set_level(logging.DEBUG)
    with runner_for(upstream.url, llm_upstream_api_key=KEY) as srv:
        assert ask(srv, True).status_code == 200
        upstream.mode = "500"
        assert ask(srv, False).status_code == 500  # its failure is logged
        info = httpx.get(srv.url + "/runner/info", timeout=TIMEOUT).text
        srv.host.runner.backend.close()
    assert {h.get("authorization") for _r, h, _b in upstream.seen[-3:]} == {f"Bearer {KEY}"}
    assert KEY not in caplog.text and KEY not in info
    assert json.loads(info)["runner"]["upstream_api_key_set"] is True


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/"])
def test_base_url_with_or_without_v1(upstream, suffix):
    assert upstream_base(upstream.url + suffix) == upstream.url + "/v1"
    with runner_for(upstream.url + suffix) as srv:
        assert health(srv)["status"] == "IDLE"
        assert ask(srv, False).status_code == 200
        assert "authorization" not in upstream.seen[-1][1]  # no key set: no header
        srv.host.runner.backend.close()


# --- load failures and health -------------------------------------------------------------------------
def test_missing_upstream_url_is_error_naming_it():
    with serve(LLMRunner, options={"llm_backend": "openai"}, model_id=MODEL) as srv:
        h = health(srv)
        assert h["status"] == "ERROR" and "LLM_UPSTREAM_URL" in h["error"], h


def test_a_model_the_upstream_does_not_serve_is_error_naming_what_it_serves(upstream):
    upstream.models = ["other/model"]
    with runner_for(upstream.url) as srv:
        h = health(srv)
    assert h["status"] == "ERROR" and MODEL in h["error"] and "other/model" in h["error"], h


def test_upstream_down_at_start_is_loading_then_idle_when_it_comes_up():
    fake = FakeUpstream()  # not started: nothing listens on its port
    with runner_for(fake.url, wait_ready=False) as srv:
        wait_for(lambda: srv.host.ready)
        assert health(srv) == {"status": "LOADING"}  # out of go-livepeer's pool; ERROR would kill the node
        info = httpx.get(srv.url + "/runner/info", timeout=TIMEOUT).json()
        assert info["status"] == "LOADING" and fake.url in info["error"] and "unreachable" in info["error"]
        assert fake.url in info["runner"]["upstream_state"]
        for stream in (True, False):  # refused at once with the JSON 500, never hung
            r = ask(srv, stream)
            assert r.status_code == 500 and r.headers["content-type"] == "application/json", r.text
        fake.start()
        try:
            assert srv.wait_until({"IDLE", "ERROR"}, timeout=30) == "IDLE"
            assert httpx.get(srv.url + "/runner/info", timeout=TIMEOUT).json()["error"] is None
            assert ask(srv, False).status_code == 200
        finally:
            srv.host.runner.backend.close()
            fake.stop()


def test_upstream_that_dies_is_loading_and_requests_fail_fast_until_it_returns():
    fake = FakeUpstream().start()
    try:
        with runner_for(fake.url) as srv:
            assert ask(srv, False).status_code == 200
            fake.stop()
            for stream in (True, False):
                r = ask(srv, stream)
                assert r.status_code == 500 and r.headers["content-type"] == "application/json", r.text
            assert srv.wait_until({"LOADING", "ERROR"}, timeout=30) == "LOADING"
            assert fake.url in httpx.get(srv.url + "/runner/info", timeout=TIMEOUT).json()["error"]
            fake.start()
            assert srv.wait_until({"IDLE", "ERROR"}, timeout=30) == "IDLE"
            assert ask(srv, True).status_code == 200
            srv.host.runner.backend.close()
    finally:
        fake.stop()


def test_recovery_while_busy_goes_through_idle_never_loading_to_ok(upstream):
    """The SDK's NotReady: LOADING while it lasts, then LOADING until the first idle moment (contract 3.1)."""
    with runner_for(upstream.url) as srv:
        backend = srv.host.runner.backend
        backend.close()  # the test sets the upstream's state itself
        backend._poller.join(timeout=10)
        backend._set_state("upstream restarting")
        assert health(srv)["status"] == "LOADING"
        srv.host.capacity.in_flight += 1  # a request still running when the upstream is back
        try:
            backend._set_state(None)
            assert health(srv)["status"] == "LOADING"
        finally:
            srv.host.capacity.in_flight -= 1
        assert health(srv)["status"] == "IDLE"
