"""LLM_BACKEND=vllm: vLLM's in-process async engine (v1 `AsyncLLM`) behind the runner's `/llm` route.

Start-up: resolve the snapshot in MODEL_DIR -> our own tokenizer (the runner templates and counts with it)
-> vLLM's engine, created on an asyncio loop that runs in a thread of its own ("vllm-loop"); vLLM starts
its engine core (scheduler, paged KV cache, model workers) in child processes.

Engine settings: max_num_seqs = RUNNER_CAPACITY (the runner never admits more, so vLLM never queues),
max_model_len = min(MAX_MODEL_LEN, the model's), prefix caching on, tensor parallel over
TENSOR_PARALLEL_SIZE GPUs (default: every visible CUDA device), GPU_MEMORY_UTILIZATION,
MAX_NUM_BATCHED_TOKENS. bf16 on CUDA (a quantised checkpoint, AWQ/GPTQ, keeps the dtype vLLM picks for it:
vLLM detects the method from config.json), float32 and eager mode on the CPU (bf16 there gives wrong text).

A request: the job thread hands the templated ids to the engine as a `TokensPrompt` (vLLM reads exactly
the tokens usage counts) with per-request sampling and DELTA outputs, on the loop thread; the loop thread
puts each output's new token ids on a queue that the job thread reads, polling so it notices a cancelled
job while it waits. Text comes from our own incremental detokeniser (detok.py), as with the transformers
backend. Completion tokens are vLLM's generated ids, which include the end-of-reply token. A cancelled job
(client gone) cancels the request's task on the loop, and vLLM's `generate` aborts it in the engine.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import queue
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runner_sdk import BadRequest, Job, LoadContext
from runner_sdk.errors import JobCancelled
from runner_sdk.resolve import resolve_snapshot

from .backend_transformers import ALLOW_PATTERNS, DEFAULT_MAX_MODEL_LEN, eos_ids
from .backends import Backend, Event, Prompt
from .detok import IncrementalDetokenizer
from .sampling import SamplingParams as OurSampling

log = logging.getLogger("runner.llm")

# The transformers backend's settings that have no meaning here: said once at load, never silent.
TRANSFORMERS_ONLY_SETTINGS = ("QUANTIZE", "USE_8BIT", "LLM_STATIC_CACHE", "LLM_COMPILE", "PIPELINE_PARALLEL_SIZE")
POLL_S = 0.05  # how often a job thread waiting for tokens looks at its cancellation and the engine's health
SHUTDOWN_S = 60.0


class EventLoopThread:
    """An asyncio loop running in a daemon thread; coroutines are submitted to it from any thread."""

    def __init__(self, name: str = "vllm-loop"):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self, timeout: float = 10.0) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)


def model_config(snapshot: Path) -> dict[str, Any]:
    """config.json of the snapshot (the text model's part of a multimodal one merged over it)."""
    config = json.loads((snapshot / "config.json").read_text())
    return {**config, **(config.get("text_config") or {}), "quantization_config": config.get("quantization_config")}


def visible_cuda_devices() -> int:
    """CUDA devices this process may use, counted without creating a CUDA context (vLLM's workers do)."""
    from vllm.platforms import current_platform

    return current_platform.device_count() if current_platform.is_cuda() else 0


class VLLMBackend(Backend):
    name = "vllm"
    engine: Any = None
    loop: EventLoopThread | None = None
    closed = False
    ignore_eos = False  # benchmarks: every request runs to its max_tokens (random weights, exact token counts)

    def setup(self, ctx: LoadContext) -> None:
        from transformers import AutoTokenizer, GenerationConfig

        s = ctx.settings
        os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")  # vLLM reports usage to its authors unless told not to
        for name in TRANSFORMERS_ONLY_SETTINGS:
            if os.environ.get(name, "").strip().lower() not in ("", "0", "false", "none"):
                ctx.note(f"{name} ignored: a setting of LLM_BACKEND=transformers (vLLM loads AWQ/GPTQ "
                         "checkpoints as they are, and batches with its own paged KV cache)")
        self.active = 0  # requests generating now (their task on the loop has not ended)
        self.tokens_generated = 0  # every token the engine produced, counted as the outputs arrive
        self.max_chunk_tokens = self.options.llm_max_chunk_tokens
        with ctx.phase("resolve"):
            self.snapshot = resolve_snapshot(s.model_id, s.model_dir, allow_patterns=ALLOW_PATTERNS)
        self.tokenizer = AutoTokenizer.from_pretrained(self.snapshot)
        if self.tokenizer.chat_template is None:
            raise ValueError(f"{s.model_id} has no chat template; the LLM runner serves chat models only")
        config = model_config(self.snapshot)
        try:
            generation = GenerationConfig.from_pretrained(self.snapshot)
        except OSError:  # no generation_config.json
            generation = GenerationConfig()
        # The same end-of-reply ids as the transformers backend (vLLM adds the generation config's anyway).
        self.eos_ids = sorted(eos_ids(types.SimpleNamespace(
            generation_config=generation, config=types.SimpleNamespace(eos_token_id=config.get("eos_token_id"))),
            self.tokenizer))
        args = self._engine_args(ctx, config)
        self.loop = EventLoopThread()
        with ctx.phase("read_weights"):
            self.engine = self.loop.submit(self._start(args)).result()
        self.context_len = self.engine.model_config.max_model_len
        self._report(ctx, args)

    def _engine_args(self, ctx: LoadContext, config: dict[str, Any]):
        """vLLM's engine arguments from the runner's settings and options."""
        from vllm.engine.arg_utils import AsyncEngineArgs

        o = self.options
        cuda = self.device.startswith("cuda")
        quant = (config.get("quantization_config") or {}).get("quant_method")
        model_len = min(o.max_model_len, config.get("max_position_embeddings") or DEFAULT_MAX_MODEL_LEN)
        tp = o.tensor_parallel_size or (max(1, visible_cuda_devices()) if cuda else 1)
        if not cuda and tp > 1:
            ctx.note(f"TENSOR_PARALLEL_SIZE={tp} ignored on the CPU: one process serves")
            tp = 1
        if cuda and self.device not in ("cuda", "cuda:0"):
            ctx.note(f"RUNNER_DEVICE={self.device}: vLLM serves on the first {tp} visible GPU(s); choose them "
                     "with CUDA_VISIBLE_DEVICES (or the container's --gpus)")
        extra: dict[str, Any] = {}
        if cuda:
            cache_root(ctx)
            extra["gpu_memory_utilization"] = o.gpu_memory_utilization
            # bf16 where the GPU has it; a quantised checkpoint keeps what vLLM picks for its kernels.
            extra["dtype"] = "bfloat16" if not quant and bf16_supported() else "auto"
        else:
            # float32: bf16 in eager mode gives wrong text on the CPU; vLLM's int4 CPU kernels take bf16 only.
            extra.update(dtype="bfloat16" if quant else "float32", enforce_eager=True)
            if quant:
                ctx.note(f"{quant} checkpoint on the CPU: served in bfloat16 (vLLM's int4 CPU kernels need it)")
        if o.max_num_batched_tokens:
            extra["max_num_batched_tokens"] = o.max_num_batched_tokens
        return AsyncEngineArgs(
            model=str(self.snapshot), tokenizer=str(self.snapshot), served_model_name=[ctx.settings.model_id],
            max_model_len=model_len, max_num_seqs=ctx.settings.capacity, enable_prefix_caching=True,
            tensor_parallel_size=tp, disable_log_stats=True, **extra)

    async def _start(self, args):
        from vllm.v1.engine.async_llm import AsyncLLM

        return AsyncLLM.from_engine_args(args)

    def _report(self, ctx: LoadContext, args) -> None:
        mc = self.engine.model_config
        ctx.report(dtype=str(mc.dtype).removeprefix("torch."),
                   PREFIX_CACHING="on" if self.engine.vllm_config.cache_config.enable_prefix_caching else "off",
                   MAX_NUM_SEQS=f"{args.max_num_seqs} concurrent sequences (RUNNER_CAPACITY)")
        if args.tensor_parallel_size > 1:
            ctx.report(TENSOR_PARALLEL=f"{args.tensor_parallel_size} GPUs")
        if mc.quantization:
            ctx.report(QUANTIZATION=f"{mc.quantization} (from the checkpoint's config)")
        if args.enforce_eager:
            ctx.report(ENFORCE_EAGER="no graph capture (CPU)")

    def warmup(self) -> None:
        ids = self.runner.prompt_ids([{"role": "user", "content": "Hello"}])
        request = types.SimpleNamespace(temperature=0.0, top_p=1.0, top_k=-1, seed=None, max_tokens=2)
        for _ in self.generate(Prompt(request, ids), Job()):  # type: ignore[arg-type]
            pass

    # --- per request ------------------------------------------------------------------------------
    def sampling_params(self, request):
        """vLLM's SamplingParams for a request: greedy exactly when our sampler is greedy (temperature ~0,
        top_k 1 or top_p 0), top_k -1 off, the seed, max_tokens, our end-of-reply ids, DELTA outputs of
        token ids only (the text is ours)."""
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        greedy = OurSampling(request.temperature, request.top_p, request.top_k, request.seed).greedy
        return SamplingParams(
            temperature=0.0 if greedy else request.temperature, top_p=1.0 if greedy else request.top_p,
            top_k=0 if greedy or request.top_k == -1 else request.top_k, seed=request.seed,
            max_tokens=request.max_tokens, stop_token_ids=[] if self.ignore_eos else list(self.eos_ids),
            ignore_eos=self.ignore_eos, detokenize=False, output_kind=RequestOutputKind.DELTA)

    def generate(self, prompt: Prompt, job: Job) -> Iterator[Event]:
        try:
            params = self.sampling_params(prompt.request)
        except ValueError as exc:  # vLLM's own checks of the values (the runner's decode checked them first)
            raise BadRequest(str(exc)) from exc
        outputs: queue.Queue = queue.Queue()
        future = self.loop.submit(self._produce(prompt.id, list(prompt.ids), params, outputs))
        return self._events(future, outputs, job)

    async def _produce(self, request_id: str, ids: list[int], params, outputs: queue.Queue) -> None:
        """On the loop: the request's outputs, as ("tokens", new ids, finish reason or None) on `outputs`;
        ("error", exception) if it fails. Cancelling this task aborts the request in the engine."""
        from vllm.inputs import TokensPrompt

        self.active += 1
        try:
            async for out in self.engine.generate(TokensPrompt(prompt_token_ids=ids), params, request_id):
                completion = out.outputs[0]
                self.tokens_generated += len(completion.token_ids)
                outputs.put(("tokens", list(completion.token_ids), completion.finish_reason if out.finished
                             else None))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the job thread, which raises it
            outputs.put(("error", exc))
        finally:
            self.active -= 1

    def _events(self, future: concurrent.futures.Future, outputs: queue.Queue, job: Job) -> Iterator[Event]:
        """Token ids turned into text deltas, merging outputs already queued (up to LLM_MAX_CHUNK_TOKENS)."""
        detok = IncrementalDetokenizer(self.tokenizer)
        completion = 0
        try:
            while True:
                items = [self._next(outputs, job, future)]
                while items[-1][0] == "tokens" and items[-1][2] is None and len(items) < self.max_chunk_tokens:
                    try:
                        items.append(outputs.get_nowait())
                    except queue.Empty:
                        break
                pieces = []
                for item in items:
                    if item[0] == "error":
                        raise self._failure(item[1], completion)
                    _, ids, finish = item
                    for token in ids:
                        completion += 1
                        pieces.append(detok.push(token))
                    if finish is not None:
                        pieces.append(detok.flush())
                        if any(pieces):
                            yield "text", "".join(pieces), completion
                        yield "finish", self._finish_reason(finish, job), completion
                        return
                yield "text", "".join(pieces), completion
        finally:
            future.cancel()  # a no-op once finished; else the engine aborts the request (client gone, error)

    def _next(self, outputs: queue.Queue, job: Job, future: concurrent.futures.Future) -> tuple:
        """The next output of the request, noticing a cancelled job or a dead engine while it waits."""
        while True:
            if job.cancelled:
                future.cancel()
                raise JobCancelled()
            try:
                return outputs.get(timeout=POLL_S)
            except queue.Empty:
                if future.done() and outputs.empty():  # ended without a last output (cancelled elsewhere)
                    raise RuntimeError("the vLLM request ended without a finish reason") from None
                reason = self.healthy()
                if reason:
                    raise RuntimeError(reason) from None

    @staticmethod
    def _finish_reason(finish: str, job: Job) -> str:
        if finish in ("stop", "length"):
            return finish
        if job.cancelled:
            raise JobCancelled()
        raise RuntimeError(f"vLLM ended the request with finish_reason {finish!r}")

    @staticmethod
    def _failure(exc: BaseException, completion: int) -> BaseException:
        """A caller's error vLLM found (before any token) is a 400; anything else fails the request."""
        from vllm.exceptions import VLLMClientError

        if completion == 0 and isinstance(exc, VLLMClientError):
            return BadRequest(f"the model server refused the request: {exc}")
        return exc

    # --- health and reporting ---------------------------------------------------------------------
    def healthy(self) -> str | None:
        """Why the engine cannot serve any more (its loop thread or its engine core process died), or None."""
        if self.closed:  # a request still waiting fails instead of polling an engine that is gone
            return "the vLLM engine was shut down"
        if self.engine is None:
            return None
        if not self.loop.thread.is_alive():
            return "the vLLM event loop thread stopped"
        if self.engine.errored:
            return "the vLLM engine core stopped (EngineDeadError); restart the runner"
        return None

    def info(self) -> dict[str, Any]:
        if self.engine is None:
            return {}
        mc, sc = self.engine.model_config, self.engine.vllm_config.scheduler_config
        return dict(active=self.active, tokens_generated=self.tokens_generated, max_num_seqs=sc.max_num_seqs,
                    max_model_len=mc.max_model_len, quantization=mc.quantization,
                    tensor_parallel_size=self.engine.vllm_config.parallel_config.tensor_parallel_size,
                    unfinished=self.engine.get_num_unfinished_requests())

    def close(self) -> None:
        engine, self.engine = self.engine, None
        self.closed = True
        if engine is None:  # a failed load: the loop thread may be running without an engine
            if self.loop is not None:
                self.loop.stop()
            return

        async def shutdown() -> None:
            engine.shutdown()

        try:
            self.loop.submit(shutdown()).result(SHUTDOWN_S)
        except Exception:  # noqa: BLE001 - closing anyway
            log.exception("vLLM engine shutdown failed")
        self.loop.stop()


def cache_root(ctx: LoadContext) -> None:
    """vLLM's caches (torch.compile artefacts of the model, CUDA-graph-ready) beside the weights, so a restarted
    container does not compile again: MODEL_DIR/.compile-cache/vllm unless VLLM_CACHE_ROOT is set."""
    if os.environ.get("VLLM_CACHE_ROOT"):
        return
    path = Path(ctx.settings.model_dir) / ".compile-cache" / "vllm"
    try:
        path.mkdir(parents=True, exist_ok=True)
        writable = os.access(path, os.W_OK | os.X_OK)
    except OSError:
        writable = False
    if writable:
        os.environ["VLLM_CACHE_ROOT"] = str(path)
        ctx.report(COMPILE_CACHE=f"vLLM's compile cache in {path}")
    else:
        ctx.note("MODEL_DIR is not writable: vLLM's compile cache stays in ~/.cache/vllm, which does not outlive "
                 "the container (set VLLM_CACHE_ROOT to a writable volume to keep it across restarts)")


def bf16_supported() -> bool:
    """Whether the GPU computes in bf16 (Ampere and later), asked without creating a CUDA context."""
    from vllm.platforms import current_platform

    return current_platform.has_device_capability(80)
