"""LLM_BACKEND=openai: the runner in front of an OpenAI-compatible server the operator already runs (a vLLM or
SGLang cluster, Ollama, llama.cpp's server), at LLM_UPSTREAM_URL. Nothing is loaded here: the upstream holds
the weights, templates the prompt and counts the tokens; the runner keeps go-livepeer's wire (checks, chunks,
usage, the error chunk), capacity, auth and health.

- Connect: `GET {base}/models` must list the model (LLM_UPSTREAM_MODEL, default MODEL_ID). Served elsewhere
  than asked, or a refused key, fails the load (/health ERROR with the reason). An upstream that is down is
  not a failed load: a background poller asks `/models` every POLL_INTERVAL_S and, while the upstream cannot
  serve, `healthy()` returns a `NotReady` reason, so /health says LOADING (out of go-livepeer's pool) and
  /runner/info's `error` says why; it is IDLE again once the upstream answers.
- A request: `POST {base}/chat/completions`, always streamed (so a disconnect closes the upstream request,
  which aborts it there), with usage on every chunk where the server supports it (vLLM, SGLang) and at the
  end otherwise (content chunks are counted meanwhile). Before the first event an upstream 400/413/422 is our
  400 with its message (e.g. a prompt beyond the context window), 429/503 `insufficient capacity`, anything
  else (or an unreachable upstream, after a short connect timeout) a 500.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import httpx

from runner_sdk import BadRequest, InsufficientCapacity, Job, LoadContext
from runner_sdk.host import NotReady

from .backends import Backend, Event, Prompt

log = logging.getLogger("runner.llm")

CONNECT_TIMEOUT_S = 3.0  # an upstream that is down fails a request this fast at most
READ_TIMEOUT_S = 300.0  # between two chunks: a busy upstream may queue the request before its first token
POLL_INTERVAL_S = 2.0
POLL_TIMEOUT_S = 3.0
CALLER_STATUSES = (400, 413, 422)  # the upstream says the request is wrong: the caller's 400
BUSY_STATUSES = (429, 503)  # the upstream is overloaded: the gateway may retry another orchestrator
FINISH_REASONS = ("stop", "length")  # passed through; any other (content_filter, tool_calls) is "stop"


class _PollFilter(logging.Filter):
    """httpx logs every request at INFO: the poller's `GET .../models` every 2 s would bury the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        polled = len(args) >= 2 and args[0] == "GET" and str(args[1]).endswith("/models")
        return not polled or logging.getLogger("httpx").isEnabledFor(logging.DEBUG)


_POLL_FILTER = _PollFilter()
logging.getLogger("httpx").addFilter(_POLL_FILTER)


def upstream_base(url: str) -> str:
    """LLM_UPSTREAM_URL as the API's base: with or without a trailing `/v1` (and `/`), it ends in `/v1`.

    Raises:
        ValueError: not an http(s) URL.
    """
    url = url.strip().rstrip("/")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"LLM_UPSTREAM_URL is not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"LLM_UPSTREAM_URL must be an http(s) URL such as http://vllm:8000/v1, got {url!r}")
    return url if url.endswith("/v1") else url + "/v1"


def upstream_message(response: httpx.Response) -> str:
    """The error text of an upstream answer: OpenAI's `{"error": {"message"}}`, vLLM's older top-level
    `message`, FastAPI's `detail`, or the body's start."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or f"HTTP {response.status_code}"
    return error_text(body) or json.dumps(body)[:500]


def error_text(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("error", "message", "detail", "msg"):
            if key in body:
                inner = body[key]
                return inner if isinstance(inner, str) else error_text(inner)
    return ""


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _poll(ref: weakref.ref, stop: threading.Event) -> None:
    """The poller thread: checks the upstream until `close()` or the backend is gone."""
    while not stop.wait(POLL_INTERVAL_S):
        backend = ref()
        if backend is None:
            return
        try:
            backend.check()
        except Exception:  # noqa: BLE001 - the poller never dies of one bad answer
            log.exception("checking the LLM upstream failed")
        del backend


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(self, runner):
        super().__init__(runner)
        self.active = 0  # upstream streams open now
        self.tokens_generated = 0  # completion tokens received, in total
        self.requests = 0
        self.max_model_len: int | None = None  # the upstream's context window, where /models says it
        self._down: str | None = "not connected yet"
        self._warned_usage = False
        self._counts = threading.Lock()
        self._stop = threading.Event()
        self._client: httpx.Client | None = None
        self._probe_client: httpx.Client | None = None

    # --- set-up and health --------------------------------------------------------------------------
    def setup(self, ctx: LoadContext) -> None:
        o = self.options
        if not o.llm_upstream_url.strip():
            raise ValueError("LLM_BACKEND=openai needs LLM_UPSTREAM_URL, the OpenAI-compatible server's base "
                             "URL (e.g. http://vllm:8000/v1)")
        url = httpx.URL(upstream_base(o.llm_upstream_url))
        # Credentials in the URL go to the clients as basic auth; the URL shown (logs, httpx's own request log
        # lines, /runner/info, errors) and used has none.
        auth = httpx.BasicAuth(url.username, url.password) if url.username or url.password else None
        self.base = str(url.copy_with(username=None, password=None))
        self.model = o.llm_upstream_model.strip() or ctx.settings.model_id
        self.tokenizer, self.context_len = None, None  # the upstream templates, counts and checks the length
        key = o.llm_upstream_api_key.get_secret_value()
        self.has_key = bool(key)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        slots = ctx.settings.capacity
        self._client = httpx.Client(
            base_url=self.base, headers=headers, auth=auth,
            timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S, pool=CONNECT_TIMEOUT_S),
            limits=httpx.Limits(max_connections=slots, max_keepalive_connections=slots))
        # Its own connection: the poll never waits behind streams that hold every pooled one.
        self._probe_client = httpx.Client(base_url=self.base, headers=headers, auth=auth,
                                          timeout=httpx.Timeout(POLL_TIMEOUT_S, connect=CONNECT_TIMEOUT_S))
        ctx.report(LLM_UPSTREAM_URL=self.base, LLM_UPSTREAM_MODEL=self.model)
        with ctx.phase("connect"):
            reason, fatal = self._probe()
        if fatal:
            raise ValueError(reason)
        self._set_state(reason)
        if reason is not None:
            ctx.note(f"upstream not serving yet ({reason}); /health says LOADING until it does")
        self._poller = threading.Thread(target=_poll, args=(weakref.ref(self), self._stop),
                                        name="llm-upstream-poll", daemon=True)
        self._poller.start()

    def _probe(self) -> tuple[str | None, bool]:
        """Whether the upstream serves the model now: (None, False) when it does, else (why not, whether it
        is a setting to fix rather than an upstream still starting or down)."""
        assert self._probe_client is not None
        try:
            r = self._probe_client.get("models")
        except httpx.HTTPError as exc:
            return f"upstream {self.base} unreachable: {_describe(exc)}", False
        if r.status_code in (401, 403):
            return (f"upstream {self.base} refused our credentials ({r.status_code}: {upstream_message(r)}); "
                    "check LLM_UPSTREAM_API_KEY"), True
        if r.status_code == 404:
            return (f"upstream {self.base}/models not found (404): is LLM_UPSTREAM_URL the server's OpenAI "
                    "base URL?"), True
        if r.status_code != 200:
            return f"upstream {self.base}/models answered {r.status_code}: {upstream_message(r)}", False
        try:
            cards = {m.get("id"): m for m in r.json().get("data", [])}
        except (ValueError, AttributeError):
            return f"upstream {self.base}/models answered something other than an OpenAI model list", True
        if self.model not in cards:
            return (f"upstream {self.base} does not serve {self.model!r} (it serves {list(cards)}); set "
                    "LLM_UPSTREAM_MODEL to one of them"), True
        window = cards[self.model].get("max_model_len")  # vLLM says it; servers that do not: no check here
        self.max_model_len = window if isinstance(window, int) and window > 0 else None
        return None, False

    def check(self) -> str | None:
        """Ask the upstream now (the poller's step); keeps and returns why it cannot serve (None: it can)."""
        reason, _fatal = self._probe()
        self._set_state(reason)
        return reason

    def _set_state(self, reason: str | None) -> None:
        was, self._down = self._down, reason
        if reason is not None and reason != was:
            log.warning("LLM upstream cannot serve: %s", reason)
        elif reason is None and was is not None:
            log.info("LLM upstream %s serves %s", self.base, self.model)

    def healthy(self) -> str | None:
        """While the upstream cannot serve: a `NotReady` reason (/health LOADING, recovers), never ERROR."""
        down = self._down
        return NotReady(down) if down is not None and self._client is not None else None

    # --- a request ----------------------------------------------------------------------------------
    def body(self, prompt: Prompt) -> dict[str, Any]:
        """The upstream request: always streamed, usage asked on every chunk (vLLM, SGLang) or at the end."""
        r = prompt.request
        body: dict[str, Any] = {
            "model": self.model, "messages": [m.model_dump() for m in r.messages], "temperature": r.temperature,
            "top_p": r.top_p, "max_tokens": r.max_tokens, "stream": True,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True}}
        if r.top_k != -1:
            body["top_k"] = r.top_k
        if r.seed is not None:
            body["seed"] = r.seed
        return body

    def generate(self, prompt: Prompt, job: Job) -> Iterator[Event]:
        assert self._client is not None
        job.step()
        window, wanted = self.max_model_len, prompt.request.max_tokens
        if window is not None and wanted >= window:  # the prompt has at least one token
            raise BadRequest(f"max_tokens ({wanted}) plus the prompt exceeds the context window of {window} "
                             "tokens")
        request = self._client.build_request("POST", "chat/completions", json=self.body(prompt))
        try:
            response = self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
                self._set_state(f"upstream {self.base} unreachable: {_describe(exc)}")
            raise RuntimeError(f"LLM upstream {self.base} failed: {_describe(exc)}") from exc
        with self._counts:
            self.active += 1
            self.requests += 1
        try:
            if response.status_code != 200:
                self._refuse(response)
            yield from self._events(response, prompt, job)
        finally:
            response.close()  # mid-reply: closes the connection, so the upstream aborts the request
            with self._counts:
                self.active -= 1

    def _refuse(self, response: httpx.Response) -> None:
        """An upstream error answer, before any event, as ours.

        Raises:
            BadRequest: the upstream says the request is wrong (400, 413, 422), with its message.
            InsufficientCapacity: the upstream is overloaded (429, 503).
            RuntimeError: anything else (500).
        """
        try:
            response.read()
            msg = upstream_message(response)
        except httpx.HTTPError as exc:
            msg = _describe(exc)
        status = response.status_code
        if status in CALLER_STATUSES:
            raise BadRequest(msg)
        if status in BUSY_STATUSES:
            raise InsufficientCapacity(f"LLM upstream busy ({status}): {msg}")
        raise RuntimeError(f"LLM upstream {self.base} answered {status}: {msg}")

    def _events(self, response: httpx.Response, prompt: Prompt, job: Job) -> Iterator[Event]:
        """The upstream's SSE chunks as events; completion tokens from its usage, else counted per chunk."""
        completion, finish, started, usage_seen = 0, None, False, False
        for chunk in self._chunks(response, job):
            if "error" in chunk:
                msg = error_text(chunk) or json.dumps(chunk)[:500]
                if not started and _status_of(chunk) in CALLER_STATUSES:
                    raise BadRequest(msg)
                raise RuntimeError(f"LLM upstream error mid-stream: {msg}")
            usage = chunk.get("usage")
            choices = chunk.get("choices") or [{}]
            text = (choices[0].get("delta") or {}).get("content") or ""
            finish = choices[0].get("finish_reason") or finish
            if isinstance(usage, dict) and usage.get("completion_tokens") is not None:
                usage_seen = True
                prompt.prompt_tokens = int(usage.get("prompt_tokens") or prompt.prompt_tokens)
                now = int(usage["completion_tokens"])
            else:
                now = completion + (1 if text else 0)  # one token per content chunk until usage arrives
            if now > completion:
                with self._counts:
                    self.tokens_generated += now - completion
            completion = now
            if text:
                started = True
                yield "text", text, completion
        job.step()
        if finish is None:
            raise RuntimeError("LLM upstream stream ended without a finish_reason")
        if not usage_seen and not self._warned_usage:
            self._warned_usage = True
            log.warning("LLM upstream %s sends no usage (stream_options.include_usage): completion tokens are "
                        "counted per content chunk and prompt tokens reported as 0", self.base)
        yield "finish", finish if finish in FINISH_REASONS else "stop", completion

    def _chunks(self, response: httpx.Response, job: Job) -> Iterator[dict[str, Any]]:
        """The JSON objects of the SSE stream's `data:` lines, up to `[DONE]` or its end.

        Raises:
            JobCancelled: the client went away (checked at every line, keep-alive comments included, so an
                upstream that only pings cannot hold the slot); `generate` then closes the response.
            RuntimeError: the connection broke or a line is not JSON.
        """
        try:
            for line in response.iter_lines():
                job.step()
                if not line.startswith("data:"):
                    continue  # blank separators, comments, event: lines
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    chunk = json.loads(data)
                except ValueError:
                    raise RuntimeError(f"LLM upstream sent a line that is not JSON: {data[:200]!r}") from None
                if isinstance(chunk, dict):
                    yield chunk
        except httpx.HTTPError as exc:
            raise RuntimeError(f"LLM upstream stream broke: {_describe(exc)}") from exc

    # --- reporting ----------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return dict(active=self.active, tokens_generated=self.tokens_generated, requests=self.requests,
                    upstream_url=getattr(self, "base", None), upstream_model=getattr(self, "model", None),
                    upstream_api_key_set=getattr(self, "has_key", False), upstream_max_model_len=self.max_model_len,
                    upstream_state="serving" if self._down is None else self._down)

    def close(self) -> None:
        self._stop.set()
        for client in (self._client, self._probe_client):
            if client is not None:
                client.close()


def _status_of(chunk: dict[str, Any]) -> int | None:
    """An in-stream error's HTTP-like code (`{"error": {"code": 400}}`), if it has one."""
    error = chunk.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    try:
        return int(code) if code is not None else None
    except (TypeError, ValueError):
        return None
