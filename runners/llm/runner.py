"""LLM runner: Llama 3.1 8B Instruct, and any Llama-architecture chat model, behind go-livepeer's `/llm`
contract (sections 3.7, 4, 8.3, Q2-Q7), on one of three backends (LLM_BACKEND, backends.py): the portable
transformers engine, vLLM in process, or any OpenAI-compatible server (LLM_UPSTREAM_URL).

A request: the SDK checks `model`; `decode` validates everything else a caller can get wrong and templates the
prompt (chat template with the generation prompt) into a `Prompt`, so every caller error is a 400 JSON before
a slot is used and before any SSE byte. `predict` hands the prompt to the backend and turns its events into
chunks: small deltas with cumulative, exact usage (prompt tokens as templated, completion tokens as
generated, the stop token included), then a final chunk whose finish_reason is `length` when max_tokens cut
the answer and `stop` otherwise.

Env: LLM_BACKEND (auto | transformers | vllm | openai), MAX_MODEL_LEN (context window, default 8192, capped by
the model's). transformers backend: QUANTIZE (int8 or int4, CUDA only, torchao), LLM_MAX_CHUNK_TOKENS (tokens
merged into one stream delta when several are ready at once, default 16), LLM_STATIC_CACHE=1 (static KV cache
engine, static_engine.py), LLM_COMPILE=1 (that engine's decode step compiled with CUDA graphs; CUDA only;
inductor cache under MODEL_DIR/.compile-cache/inductor), OMP_NUM_THREADS (its intra-op threads; default on
the CPU: cores - 1, see engine.py). vllm backend: GPU_MEMORY_UTILIZATION,
TENSOR_PARALLEL_SIZE, MAX_NUM_BATCHED_TOKENS (the stock image's). openai backend: LLM_UPSTREAM_URL,
LLM_UPSTREAM_MODEL (default MODEL_ID), LLM_UPSTREAM_API_KEY.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator

from runner_sdk import BadRequest, Job, LoadContext, Runner, RunnerOptions, routes, schemas
from runner_sdk.settings import bool_word

from .backend_transformers import ALLOW_PATTERNS, DEFAULT_MAX_MODEL_LEN
from .backends import Backend, BackendName, Prompt, make_backend
from .prompt import prompt_ids as template_ids

log = logging.getLogger("runner.llm")

ROLES = ("system", "user", "assistant")

class LLMRequest(schemas.LLMRequest):
    """The contract's LLMRequest plus `seed`, an extension go-livepeer ignores (it never sends it)."""

    seed: int | None = Field(None, description="Makes sampling reproducible (extension; not sent by go-livepeer).")


class LLMOptions(RunnerOptions):
    """The LLM runner's env vars (see the module docstring)."""

    llm_backend: BackendName = Field("auto", description="LLM_BACKEND: auto, transformers, vllm or openai")
    quantize: Literal["", "int8", "int4"] = Field("", description="QUANTIZE: weight-only int8/int4 (CUDA)")
    use_8bit: bool = Field(False, description="USE_8BIT: the stock image's switch, read as QUANTIZE=int8")
    max_model_len: int = Field(DEFAULT_MAX_MODEL_LEN, ge=16, description="context window, capped by the model's")
    llm_max_chunk_tokens: int = Field(16, ge=1, description="tokens merged into one stream delta at most")
    llm_static_cache: bool = Field(False, description="LLM_STATIC_CACHE: the static KV cache engine")
    llm_compile: bool = Field(False, description="LLM_COMPILE: that engine's decode step compiled (CUDA)")
    # vllm backend: the stock ai-runner image's engine settings (contract 2), same names and meaning.
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="vLLM: share of GPU memory it may use")
    tensor_parallel_size: int | None = Field(None, ge=1, description="vLLM: GPUs to shard over (default: all given)")
    max_num_batched_tokens: int | None = Field(None, ge=16, description="vLLM: tokens per engine step")
    # openai backend.
    llm_upstream_url: str = Field("", description="LLM_UPSTREAM_URL: the OpenAI-compatible server's base URL")
    llm_upstream_model: str = Field("", description="LLM_UPSTREAM_MODEL: its model name (default MODEL_ID)")
    llm_upstream_api_key: SecretStr = Field(SecretStr(""), description="LLM_UPSTREAM_API_KEY: its bearer key")

    @field_validator("llm_backend", mode="before")
    @classmethod
    def _backend(cls, v: object) -> object:
        return v.strip().lower() or "auto" if isinstance(v, str) else v

    @field_validator("quantize", mode="before")
    @classmethod
    def _quantize(cls, v: object) -> object:
        word = v.strip().lower() if isinstance(v, str) else v
        return "" if word == "none" else word

    @field_validator("use_8bit", "llm_static_cache", "llm_compile", mode="before")
    @classmethod
    def _bool_word(cls, v: object) -> bool:
        return bool_word(v if isinstance(v, (str, bool)) else None)


class LLMRunner(Runner[LLMRequest, Prompt]):
    route = dataclasses.replace(routes.LLM, request_model=LLMRequest)
    Options = LLMOptions
    oom_message = "Out of memory during LLM processing."
    error_message = "Internal server error during LLM processing."
    _encode_lock = threading.Lock()

    # --- set-up -----------------------------------------------------------------------------------
    def setup(self, ctx: LoadContext) -> None:
        self.backend: Backend = self.make_backend()
        ctx.report(LLM_BACKEND=self.backend.name)
        self.backend.setup(ctx)
        self.tokenizer = self.backend.tokenizer
        self.context_len = self.backend.context_len

    def make_backend(self) -> Backend:
        """The backend LLM_BACKEND names (a subclass may return its own, e.g. a test's)."""
        return make_backend(self)

    def warmup(self) -> None:
        self.backend.warmup()

    def close(self) -> None:
        backend = getattr(self, "backend", None)
        if backend is not None:
            backend.close()

    # The transformers backend's engine and model (tests and benchmarks reach them through the runner).
    @property
    def engine(self):
        return self.backend.engine

    @property
    def model(self):
        return self.backend.model

    # --- per request ------------------------------------------------------------------------------
    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """The templated prompt's token ids, exactly what the model reads (usage counts these)."""
        # One encoder at a time: a fast tokenizer's call may reconfigure its Rust state (truncation,
        # padding), which raises "Already borrowed" when two threads do it at once.
        # Message content is tokenized as text, so special-token text in it cannot forge a turn (prompt.py).
        with self._encode_lock:
            return template_ids(self.tokenizer, messages)

    def decode(self, request: LLMRequest) -> Prompt:
        """Every caller error as a 400 (contract 3.7, Q4-Q6), then the templated prompt.

        Raises:
            BadRequest: empty or malformed messages, sampling values out of range, a prompt the chat template
            rejects, or prompt + max_tokens beyond the context window. (LLM_BACKEND=openai templates and
            counts upstream: its refusals of a prompt are 400s from `predict`, before any stream byte.)
        """
        self._check_sampling(request)
        if self.tokenizer is None:
            return Prompt(request, None)
        try:
            ids = self.prompt_ids([m.model_dump() for m in request.messages])
        except Exception as exc:  # a template's raise_exception, e.g. roles out of order for some models
            raise BadRequest(f"messages do not fit the model's chat template: {exc}") from exc
        if self.context_len is not None and len(ids) + request.max_tokens > self.context_len:
            raise BadRequest(
                f"prompt ({len(ids)} tokens) plus max_tokens ({request.max_tokens}) exceeds the context window "
                f"of {self.context_len} tokens")
        return Prompt(request, ids)

    @staticmethod
    def _check_sampling(request: LLMRequest) -> None:
        if not request.messages:
            raise BadRequest("messages must be a non-empty list of {role, content} objects")
        for i, message in enumerate(request.messages):
            if message.role not in ROLES:
                raise BadRequest(f"messages[{i}].role {message.role!r} is not one of system, user, assistant")
        if not 0 <= request.temperature <= 2:
            raise BadRequest(f"temperature must be between 0 and 2, got {request.temperature}")
        if not 0 <= request.top_p <= 1:
            raise BadRequest(f"top_p must be between 0 and 1, got {request.top_p}")
        if request.top_k != -1 and request.top_k < 1:
            raise BadRequest(f"top_k must be -1 (off) or at least 1, got {request.top_k}")
        if request.max_tokens < 1:
            raise BadRequest(f"max_tokens must be at least 1, got {request.max_tokens}")
        if request.seed is not None and not 0 <= request.seed < 2**63:
            raise BadRequest(f"seed must be between 0 and 2^63-1, got {request.seed}")

    def predict(self, prompt: Prompt, job: Job) -> schemas.LLMResponse | Iterator[schemas.LLMResponse]:
        events = self.backend.generate(prompt, job)
        if self.wants_stream(prompt.request):
            return self._stream(prompt, events)
        with job.stage("generate"):
            text, finish = [], "stop"
            for kind, value, completion in events:
                prompt.completion = completion
                if kind == "text":
                    text.append(value)
                else:
                    finish = value
        message = schemas.LLMMessage(role="assistant", content="".join(text))
        return self._chunk(prompt, finish, message=message)

    def _stream(self, prompt: Prompt, events: Iterator) -> Iterator[schemas.LLMResponse]:
        for kind, value, completion in events:
            prompt.completion = completion
            if kind == "text":
                # A chunk per step even when the text is held back (half a character): usage still grows.
                yield self._chunk(prompt, "", delta=value)
            else:
                yield self._chunk(prompt, value, delta="")

    def _chunk(self, prompt: Prompt, finish: str, delta: str | None = None,
               message: schemas.LLMMessage | None = None) -> schemas.LLMResponse:
        """One response or stream chunk with exact, cumulative usage (contract 3.7)."""
        tokens, completion = prompt.prompt_tokens, prompt.completion
        return schemas.LLMResponse(
            id=prompt.id, model=self.settings.model_id, created=int(time.time()),
            usage=schemas.LLMTokenUsage(prompt_tokens=tokens, completion_tokens=completion,
                                        total_tokens=tokens + completion),
            choices=[schemas.LLMChoice(
                index=0, finish_reason=finish,
                delta=schemas.LLMMessage(role="assistant", content=delta) if delta is not None else None,
                message=message)],
        )

    def stream_error_chunk(self, prompt: Prompt, exc: BaseException) -> schemas.LLMResponse:
        """After the stream started: one choice, empty content, finish_reason "error" (contract Q3)."""
        return self._chunk(prompt, "error", delta="")

    # --- health and reporting ---------------------------------------------------------------------
    def healthy(self) -> str | None:
        """The backend's reason it cannot serve (a dead engine thread, an unreachable upstream), or None."""
        backend = getattr(self, "backend", None)
        return backend.healthy() if backend is not None else None

    def info(self) -> dict[str, Any]:
        backend = getattr(self, "backend", None)
        facts: dict[str, Any] = {"context_len": getattr(self, "context_len", None)}
        if backend is not None:
            facts.update(backend=backend.name, **backend.info())
        return facts

    @classmethod
    def download_plan(cls, model_id: str) -> list[tuple[str, list[str] | None]]:
        """The checkpoint's files; nothing with LLM_BACKEND=openai (the upstream server holds the weights)."""
        if os.environ.get("LLM_BACKEND", "").strip().lower() == "openai":
            return []
        return [(model_id, ALLOW_PATTERNS)]
