"""LLM runner: Llama 3.1 8B Instruct, and any Llama-architecture chat model, via transformers, behind
go-livepeer's `/llm` contract (sections 3.7, 4, 8.3, Q2-Q7).

Start-up: resolve the snapshot in MODEL_DIR -> read the weights (bf16 straight onto the GPU, fp32 on the
CPU) -> optional weight-only quantisation (QUANTIZE=int8|int4, CUDA) -> start the engine thread -> one short
warm-up generation.

A request: the SDK checks `model`; `decode` validates everything else a caller can get wrong and templates the
prompt (chat template with the generation prompt) into a `Prompt`, so every caller error is a 400 JSON before
a slot is used and before any SSE byte. `predict` submits the prompt to the shared engine (engine.py: step-level batching of up to CAPACITY
sequences) and turns its token events into chunks: small deltas with cumulative, exact usage (prompt tokens
as templated, completion tokens as generated, the stop token included), then a final chunk whose
finish_reason is `length` when max_tokens cut the answer and `stop` otherwise.

Env: MAX_MODEL_LEN (context window, default 8192, capped by the model's), QUANTIZE (int8 or int4, CUDA
only, torchao), LLM_MAX_CHUNK_TOKENS (tokens merged into one stream delta when several are ready at once, default 16),
LLM_STATIC_CACHE=1 (static KV cache engine, static_engine.py), LLM_COMPILE=1 (that engine's decode step
compiled with CUDA graphs; CUDA only; inductor cache under MODEL_DIR/.compile-cache/inductor).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field, field_validator

from runner_sdk import BadRequest, Job, LoadContext, Runner, RunnerOptions, routes, schemas
from runner_sdk.compile_cache import compile_cache_dir
from runner_sdk.errors import JobCancelled
from runner_sdk.integrity import NonFiniteOutput, integrity_of
from runner_sdk.resolve import resolve_snapshot
from runner_sdk.settings import bool_word

from .detok import IncrementalDetokenizer
from .engine import Engine, Sequence
from .prompt import prompt_ids as template_ids
from .sampling import SamplingParams

# The stock image's vLLM engine env (contract 2) that has no meaning here: said once at load, never silent.
VLLM_ONLY_SETTINGS = ("GPU_MEMORY_UTILIZATION", "TENSOR_PARALLEL_SIZE", "PIPELINE_PARALLEL_SIZE",
                      "MAX_NUM_BATCHED_TOKENS")

log = logging.getLogger("runner.llm")

ROLES = ("system", "user", "assistant")
DEFAULT_MAX_MODEL_LEN = 8192  # ai-runner's MAX_MODEL_LEN (contract 8.3)
# What a transformers checkpoint needs; never the `original/` consolidated .pth of Meta's repositories.
ALLOW_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.jinja"]


class LLMRequest(schemas.LLMRequest):
    """The contract's LLMRequest plus `seed`, an extension go-livepeer ignores (it never sends it)."""

    seed: int | None = Field(None, description="Makes sampling reproducible (extension; not sent by go-livepeer).")


class LLMOptions(RunnerOptions):
    """The LLM runner's env vars (see the module docstring)."""

    quantize: Literal["", "int8", "int4"] = Field("", description="QUANTIZE: weight-only int8/int4 (CUDA)")
    use_8bit: bool = Field(False, description="USE_8BIT: the stock image's switch, read as QUANTIZE=int8")
    max_model_len: int = Field(DEFAULT_MAX_MODEL_LEN, ge=16, description="context window, capped by the model's")
    llm_max_chunk_tokens: int = Field(16, ge=1, description="tokens merged into one stream delta at most")
    llm_static_cache: bool = Field(False, description="LLM_STATIC_CACHE: the static KV cache engine")
    llm_compile: bool = Field(False, description="LLM_COMPILE: that engine's decode step compiled (CUDA)")

    @field_validator("quantize", mode="before")
    @classmethod
    def _quantize(cls, v: object) -> object:
        word = v.strip().lower() if isinstance(v, str) else v
        return "" if word == "none" else word

    @field_validator("use_8bit", "llm_static_cache", "llm_compile", mode="before")
    @classmethod
    def _bool_word(cls, v: object) -> bool:
        return bool_word(v if isinstance(v, (str, bool)) else None)


@dataclasses.dataclass
class Prompt:
    """What `decode` hands to `predict`: the request, its templated token ids, and the response's
    identity and running token counts (shared with `stream_error_chunk`)."""

    request: LLMRequest
    ids: list[int]
    id: str = dataclasses.field(default_factory=lambda: f"chatcmpl-{uuid.uuid4()}")
    completion: int = 0

    @property
    def prompt_tokens(self) -> int:
        return len(self.ids)


class LLMRunner(Runner[LLMRequest, Prompt]):
    route = dataclasses.replace(routes.LLM, request_model=LLMRequest)
    Options = LLMOptions
    oom_message = "Out of memory during LLM processing."
    error_message = "Internal server error during LLM processing."
    _encode_lock = threading.Lock()

    # --- set-up -----------------------------------------------------------------------------------
    def setup(self, ctx: LoadContext) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        s, o = ctx.settings, self.options
        cuda = self.device.startswith("cuda")
        # USE_8BIT: the stock image's switch (vLLM 8-bit), read as our int8 weight-only.
        quantize = o.quantize or ("int8" if o.use_8bit else "")
        for name in VLLM_ONLY_SETTINGS:
            if os.environ.get(name):
                ctx.note(f"{name} ignored: a vLLM engine setting of the stock image; this runner uses one device "
                         "and batches up to RUNNER_CAPACITY (MAX_NUM_SEQS) sequences")
        with ctx.phase("resolve"):
            self.snapshot = resolve_snapshot(s.model_id, s.model_dir, allow_patterns=ALLOW_PATTERNS)
        # bf16 where the GPU has it (Ampere and later), fp16 on older cards, fp32 on the CPU.
        torch_dtype = torch.float32
        if cuda:
            torch_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        with ctx.phase("read_weights"):
            self.tokenizer = AutoTokenizer.from_pretrained(self.snapshot)
            # On a GPU the weights go straight from the files to device memory (no CPU copy of the model).
            self.model = AutoModelForCausalLM.from_pretrained(
                self.snapshot, dtype=torch_dtype, attn_implementation="sdpa",
                device_map={"": self.device} if cuda else None)
        with ctx.phase("to_device"):
            if not cuda:  # on CUDA, device_map already put every weight there
                self.model.to(self.device)
            self.model.eval()
        dtype = str(torch_dtype).removeprefix("torch.")
        ctx.report(dtype=dtype)
        if quantize:
            if not cuda:
                ctx.note(f"QUANTIZE={quantize} ignored: weight-only quantisation needs CUDA; serving {dtype}")
            else:
                with ctx.phase("optimise"):
                    from .quantize import quantize_weights

                    ctx.report(QUANTIZE=quantize_weights(self.model, quantize))
        if self.tokenizer.chat_template is None:
            raise ValueError(f"{s.model_id} has no chat template; the LLM runner serves chat models only")
        config_len = getattr(self.model.config, "max_position_embeddings", None) or DEFAULT_MAX_MODEL_LEN
        self.context_len = min(o.max_model_len, config_len)
        self.eos_ids = _eos_ids(self.model, self.tokenizer)
        self.max_chunk_tokens = o.llm_max_chunk_tokens
        self.engine = self._make_engine(ctx)
        if s.capacity > 1:
            ctx.report(BATCHING=f"step-level batching of up to {s.capacity} sequences")

    def _make_engine(self, ctx: LoadContext) -> Engine:
        """The default dynamic-cache engine, or the opt-in static-cache one (compiled on CUDA)."""
        compile_decode = self.options.llm_compile
        static = compile_decode or self.options.llm_static_cache
        cap = ctx.settings.capacity
        if compile_decode and not self.device.startswith("cuda"):
            ctx.note("LLM_COMPILE ignored: the compiled CUDA-graph decode path needs CUDA (static cache kept)")
            compile_decode = False
        if not static:
            return Engine(self.model, self.device, max_batch=cap, eos_ids=self.eos_ids).start()
        from .static_engine import StaticEngine

        if compile_decode:
            # Keep inductor's compiled kernels with the models, so a restarted container reuses them.
            _cache, note = compile_cache_dir(ctx.settings.model_dir)
            if note:
                ctx.note(note)
        with ctx.phase("optimise"):
            engine = StaticEngine(self.model, self.device, max_batch=cap, eos_ids=self.eos_ids,
                                  max_len=self.context_len, compile_decode=compile_decode)
        ctx.report(STATIC_CACHE=f"{cap} x {self.context_len} static KV cache")
        if compile_decode:
            ctx.report(COMPILE="torch.compile reduce-overhead decode (CUDA graphs), "
                               f"cache {os.environ['TORCHINDUCTOR_CACHE_DIR']}")
        return engine.start()

    def warmup(self) -> None:
        job = Job()
        ids = self.prompt_ids([{"role": "user", "content": "Hello"}])
        seq = self.engine.submit(ids, 2, SamplingParams(temperature=0), job)
        for _ in self._events(seq):
            pass

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
            rejects, or prompt + max_tokens beyond the context window.
        """
        self._check_sampling(request)
        try:
            ids = self.prompt_ids([m.model_dump() for m in request.messages])
        except Exception as exc:  # a template's raise_exception, e.g. roles out of order for some models
            raise BadRequest(f"messages do not fit the model's chat template: {exc}") from exc
        if len(ids) + request.max_tokens > self.context_len:
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
        request = prompt.request
        params = SamplingParams(request.temperature, request.top_p, request.top_k, request.seed)
        seq = self.engine.submit(prompt.ids, request.max_tokens, params, job)
        if self.wants_stream(request):
            return self._stream(prompt, seq)
        with job.stage("generate"):
            text, finish = [], "stop"
            for kind, value, completion in self._events(seq):
                prompt.completion = completion
                if kind == "text":
                    text.append(value)
                else:
                    finish = value
        message = schemas.LLMMessage(role="assistant", content="".join(text))
        return self._chunk(prompt, finish, message=message)

    def _events(self, seq: Sequence) -> Iterator[tuple[str, Any, int]]:
        """(kind, value, completion tokens so far): ("text", delta) as tokens arrive, merging what is
        already queued into one delta, then ("finish", reason)."""
        detok = IncrementalDetokenizer(self.tokenizer)
        completion = 0
        while True:
            events = [self._next_event(seq)]
            while events[-1][0] == "token" and len(events) < self.max_chunk_tokens:
                try:
                    events.append(seq.events.get_nowait())
                except queue.Empty:
                    break
            pieces = []
            for kind, value in events:
                if kind == "token":
                    completion += 1
                    pieces.append(detok.push(value))
                elif kind == "done":
                    pieces.append(detok.flush())
                    if any(pieces):
                        yield "text", "".join(pieces), completion
                    yield "finish", value, completion
                    return
                elif kind == "error":
                    if isinstance(value, NonFiniteOutput):
                        integrity_of(self).failed("logits")
                    raise value
                else:
                    raise JobCancelled()
            yield "text", "".join(pieces), completion

    def _next_event(self, seq: Sequence) -> tuple[str, Any]:
        while True:
            try:
                return seq.events.get(timeout=1.0)
            except queue.Empty:
                if not self.engine.thread.is_alive():  # never wait forever on a dead engine
                    raise RuntimeError("the LLM engine thread stopped") from None

    def _stream(self, prompt: Prompt, seq: Sequence) -> Iterator[schemas.LLMResponse]:
        for kind, value, completion in self._events(seq):
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
        """A dead engine thread can never answer again: /health turns ERROR instead of failing each request."""
        engine = getattr(self, "engine", None)
        if engine is not None and not engine.thread.is_alive():
            return "the LLM engine thread stopped"
        return None

    def info(self) -> dict[str, Any]:
        engine = getattr(self, "engine", None)
        facts: dict[str, Any] = {"context_len": getattr(self, "context_len", None)}
        if engine is not None:
            facts.update(max_batch=engine.max_batch, active=engine.batch_size, max_batch_seen=engine.max_batch_seen,
                         tokens_generated=engine.tokens_generated, decode_steps=engine.decode_steps)
        return facts

    @classmethod
    def download_plan(cls, model_id: str) -> list[tuple[str, list[str] | None]]:
        return [(model_id, ALLOW_PATTERNS)]


def _eos_ids(model, tokenizer) -> set[int]:
    """Every id that ends a reply: the generation config's (Llama 3.1: end_of_text, eom, eot) and the
    tokenizer's eos."""
    ids: set[int] = set()
    for source in (getattr(model.generation_config, "eos_token_id", None), model.config.eos_token_id,
                   tokenizer.eos_token_id):
        if isinstance(source, int):
            ids.add(source)
        elif source:
            ids.update(int(i) for i in source)
    if not ids:
        raise ValueError("the model defines no end-of-sequence token")
    return ids
