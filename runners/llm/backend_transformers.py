"""LLM_BACKEND=transformers: the portable engine (engine.py) on transformers, on any device, the CPU included.

Start-up: resolve the snapshot in MODEL_DIR -> read the weights (bf16 straight onto the GPU, fp32 on the
CPU) -> optional weight-only quantisation (QUANTIZE=int8|int4, CUDA) -> start the engine thread. A request's
prompt ids go to the shared engine (step-level batching of up to CAPACITY sequences); its token events are
detokenised into small deltas (detok.py), merging what is already queued into one delta.
"""

from __future__ import annotations

import logging
import os
import queue
from collections.abc import Iterator
from typing import Any

from runner_sdk import Job, LoadContext
from runner_sdk.compile_cache import compile_cache_dir
from runner_sdk.errors import JobCancelled
from runner_sdk.integrity import NonFiniteOutput, integrity_of
from runner_sdk.resolve import resolve_snapshot

from .backends import Backend, Event, Prompt
from .detok import IncrementalDetokenizer
from .engine import Engine, Sequence
from .sampling import SamplingParams

log = logging.getLogger("runner.llm")

# The stock image's vLLM engine env (contract 2) that has no meaning here: said once at load, never silent.
VLLM_ONLY_SETTINGS = ("GPU_MEMORY_UTILIZATION", "TENSOR_PARALLEL_SIZE", "PIPELINE_PARALLEL_SIZE",
                      "MAX_NUM_BATCHED_TOKENS")
DEFAULT_MAX_MODEL_LEN = 8192  # ai-runner's MAX_MODEL_LEN (contract 8.3)
# What a transformers checkpoint needs; never the `original/` consolidated .pth of Meta's repositories.
ALLOW_PATTERNS = ["*.json", "*.safetensors", "tokenizer*", "*.jinja"]


class TransformersBackend(Backend):
    name = "transformers"

    def setup(self, ctx: LoadContext) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        s, o = ctx.settings, self.options
        cuda = self.device.startswith("cuda")
        # USE_8BIT: the stock image's switch (vLLM 8-bit), read as our int8 weight-only.
        quantize = o.quantize or ("int8" if o.use_8bit else "")
        for name in VLLM_ONLY_SETTINGS:
            if os.environ.get(name):
                ctx.note(f"{name} ignored: a vLLM engine setting of the stock image; this backend uses one device "
                         "and batches up to RUNNER_CAPACITY (MAX_NUM_SEQS) sequences (LLM_BACKEND=vllm reads it)")
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
        self.eos_ids = eos_ids(self.model, self.tokenizer)
        self.max_chunk_tokens = o.llm_max_chunk_tokens
        self.engine = self._make_engine(ctx)
        if self.engine.cpu_threads is not None:
            ctx.report(CPU_THREADS=f"{self.engine.cpu_threads} intra-op thread(s) for the engine, one core left to "
                                   "the serving threads (OMP_NUM_THREADS overrides)")
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
        ids = self.runner.prompt_ids([{"role": "user", "content": "Hello"}])
        seq = self.engine.submit(ids, 2, SamplingParams(temperature=0), Job())
        for _ in self._events(seq):
            pass

    def generate(self, prompt: Prompt, job: Job) -> Iterator[Event]:
        r = prompt.request
        seq = self.engine.submit(prompt.ids, r.max_tokens, SamplingParams(r.temperature, r.top_p, r.top_k, r.seed),
                                 job)
        return self._events(seq)

    def _events(self, seq: Sequence) -> Iterator[Event]:
        """Token events turned into text deltas, merging what is already queued (up to LLM_MAX_CHUNK_TOKENS)."""
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
                else:
                    # Tokens merged before the failure are still sent, so the stream starts (a 200 with the
                    # error chunk) exactly when it would have had the job thread read each token on its own.
                    if pieces:
                        yield "text", "".join(pieces), completion
                    if kind == "error":
                        if isinstance(value, NonFiniteOutput):
                            integrity_of(self.runner).failed("logits")
                        raise value
                    raise JobCancelled()
            yield "text", "".join(pieces), completion

    def _next_event(self, seq: Sequence) -> tuple[str, Any]:
        while True:
            try:
                return seq.events.get(timeout=1.0)
            except queue.Empty:
                if not self.engine.thread.is_alive():  # never wait forever on a dead engine
                    raise RuntimeError("the LLM engine thread stopped") from None

    def healthy(self) -> str | None:
        """A dead engine thread can never answer again: /health turns ERROR instead of failing each request."""
        engine = getattr(self, "engine", None)
        if engine is not None and not engine.thread.is_alive():
            return "the LLM engine thread stopped"
        return None

    def info(self) -> dict[str, Any]:
        engine = getattr(self, "engine", None)
        if engine is None:
            return {}
        return dict(max_batch=engine.max_batch, active=engine.batch_size, max_batch_seen=engine.max_batch_seen,
                    tokens_generated=engine.tokens_generated, decode_steps=engine.decode_steps,
                    cpu_threads=engine.cpu_threads)

    def close(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.close()


def eos_ids(model, tokenizer) -> set[int]:
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
