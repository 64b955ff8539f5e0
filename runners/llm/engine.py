"""The decode loop: one engine thread owns the model and runs every sequence, batching them step by step.

Requests join between decode steps: a new sequence is prefilled on its own (batch of one, no padding), then
its KV cache is left-padded to the batch's length and stacked onto the running batch. Each decode step feeds
every sequence's last token with its own position id and a 2-D attention mask that hides the padding, so a
sequence's tokens do not depend on what else is in the batch (greedy outputs equal the one-by-one outputs).
Finished or cancelled sequences leave the batch at once (their rows are dropped, and columns that only held
padding are trimmed).

Each sequence gets its events on its own queue: ("token", id), then ("done", "stop"|"length"), or
("error", exception), or ("cancelled", None). The engine calls `job.step()` once per generated token, so a
request whose client went away stops within one step.

The KV cache goes to the model under the keyword its forward declares: `cache` (transformers 5.24 and later)
or `past_key_values` (before 5.24). The model's forward takes **kwargs, so a wrong name would be swallowed
silently and every step would run without the cache; the name is therefore read from the signature once.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import queue
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import DynamicCache

from runner_sdk import Job
from runner_sdk.errors import JobCancelled, is_out_of_memory
from runner_sdk.integrity import NonFiniteOutput

from .sampling import NONFINITE, SamplingParams, choose_tokens_tensor

log = logging.getLogger(__name__)

# The transformers releases the LLM runner is tested on (pyproject's llm extra says the same): the engines
# need 5.4 (the static cache's tensor write position), the GGUF importer's tokenizers 5.6.
SUPPORTED_TRANSFORMERS = ">=5.6,<6"


def cache_keyword(model) -> str:
    """The keyword under which `model`'s forward takes the KV cache.

    Args:
        model: a transformers causal LM (anything with a `forward` method).

    Returns:
        "cache" where the forward declares it (transformers 5.24+), else "past_key_values" (before 5.24).

    Raises:
        RuntimeError: the forward declares neither, naming the installed transformers version and the
            supported range (the runner's load fails with it, so /health says ERROR with this reason).
    """
    params = inspect.signature(model.forward).parameters
    for name in ("cache", "past_key_values"):
        if name in params:
            return name
    import transformers

    raise RuntimeError(
        f"{type(model).__name__}.forward takes neither `cache` nor `past_key_values` (transformers "
        f"{transformers.__version__}); the LLM engine needs transformers{SUPPORTED_TRANSFORMERS}")


def available_cores() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup v2 CPU quota (a container's
    `--cpus`), which torch's default thread count does not see."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def engine_cpu_threads() -> int | None:
    """Intra-op threads of the engine's forward passes on the CPU: one core fewer than the process may use
    (at least one), never more than torch would use; None (torch's own setting) when the operator chose with
    OMP_NUM_THREADS or MKL_NUM_THREADS.

    Why: every parallel region ends at a barrier that waits for its slowest thread, and a decode step runs
    hundreds of small regions. With one OpenMP thread per core, any other runnable thread (this runner's
    event loop and job thread, woken for every streamed token, or another process) takes a core from one
    worker and the whole step waits for it to be scheduled again. Measured on 2 cores, SmolLM2-135M fp32,
    load average 4-5 from other processes: 128-token prefill 0.6 s on 1 thread vs 10 s on 2; one-stream
    decode 10 tokens/s vs 2.5; served over HTTP, 2 threads fell to 0.14x one-thread `generate`. On a quiet
    machine the second thread gained nothing for one stream (25.2 vs 25.6 tokens/s).
    """
    if os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"):
        return None
    return max(1, min(torch.get_num_threads(), available_cores() - 1))


@dataclass(eq=False)
class Sequence:
    prompt_ids: list[int]
    max_new_tokens: int
    params: SamplingParams
    job: Job
    events: queue.Queue = field(default_factory=queue.Queue)
    generated: list[int] = field(default_factory=list)
    generator: torch.Generator | None = None  # only a seeded request has its own (sampling.py)


class Engine:
    def __init__(self, model, device: str, max_batch: int, eos_ids: set[int]):
        self.model = model
        self.cache_kw = cache_keyword(model)  # raises here, at load, rather than decoding without a cache
        self.device = torch.device(device)
        self.max_batch = max_batch
        self.eos_ids = eos_ids
        self.incoming: queue.Queue[Sequence | None] = queue.Queue()
        self.tokens_generated = 0  # every token any sequence produced (tests count it to see a stop)
        self.decode_steps = 0
        self.max_batch_seen = 0
        # The running batch: one row per active sequence.
        self.active: list[Sequence] = []
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None  # (batch, cached length): 1 for real tokens, 0 for left padding
        self.positions: torch.Tensor | None = None  # (batch,): position id of each row's next input token
        self.next_ids: torch.Tensor | None = None  # the same tokens on the device: the next step's input
        # Unseeded rows all draw from this one generator, in one call per step (sampling.py).
        self.shared = torch.Generator(device=self.device)
        self.shared.manual_seed(secrets.randbits(63))
        self.cpu_threads = engine_cpu_threads() if self.device.type == "cpu" else None
        self.padded = False  # whether any row has left padding (checked when the batch changes)
        self._closed = False
        self.thread = threading.Thread(target=self._run, name="llm-engine", daemon=True)

    # --- public -----------------------------------------------------------------------------------
    def start(self) -> Engine:
        self.thread.start()
        return self

    def submit(self, prompt_ids: list[int], max_new_tokens: int, params: SamplingParams, job: Job) -> Sequence:
        gen = None
        if params.seed is not None and not params.greedy:
            gen = torch.Generator(device=self.device)
            gen.manual_seed(params.seed)
        seq = Sequence(prompt_ids, max_new_tokens, params, job, generator=gen)
        self.incoming.put(seq)
        return seq

    def close(self) -> None:
        self._closed = True
        self.incoming.put(None)

    @property
    def batch_size(self) -> int:
        return len(self.active)

    # --- the loop ---------------------------------------------------------------------------------
    def _run(self) -> None:
        if self.cpu_threads is not None:
            self._set_threads(self.cpu_threads)
        with torch.inference_mode():
            while not self._closed:
                try:
                    self._admit()
                    if self.active:
                        self._decode_step()
                except Exception as exc:  # noqa: BLE001 - bookkeeping failed (e.g. OOM growing the cache)
                    log.exception("engine step failed")
                    failed = list(self.active)
                    self._reset()
                    self._fail(failed, exc)

    @staticmethod
    def _set_threads(count: int) -> None:
        """This thread's intra-op thread count (OpenMP's and MKL's are per thread; this one runs every forward
        pass). torch.set_num_threads also sets the count that threads started later begin with: it is given
        back from a throwaway thread, so other threads of the process (other runners in a test session) keep
        theirs."""
        before = torch.get_num_threads()  # also settles this thread's own count before the change
        torch.set_num_threads(count)
        restore = threading.Thread(target=torch.set_num_threads, args=(before,), name="llm-threads")
        restore.start()
        restore.join()

    def _admit(self) -> None:
        """Prefill waiting sequences into free rows; block only when there is nothing to decode."""
        while len(self.active) < self.max_batch and not self._closed:
            try:
                seq = self.incoming.get(block=not self.active)
            except queue.Empty:
                return
            if seq is None:
                return
            self._prefill(seq)

    def _prefill(self, seq: Sequence) -> None:
        if seq.job.cancelled:
            seq.events.put(("cancelled", None))
            return
        try:
            cache = DynamicCache(config=self.model.config)
            ids = torch.tensor([seq.prompt_ids], dtype=torch.long, device=self.device)
            out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1, **{self.cache_kw: cache})
            chosen = self._choose(out.logits[:, -1], [seq])
            token = chosen.tolist()[0]
        except Exception as exc:  # noqa: BLE001 - this request fails; the batch goes on
            self._fail([seq], exc)
            return
        if self._emit(seq, token):
            try:
                self._join(seq, cache, chosen)
            except Exception as exc:  # noqa: BLE001 - the batch may be half-updated: fail it all
                failed = [*self.active, seq]
                self._reset()
                self._fail(failed, exc)

    def _decode_step(self) -> None:
        gone = [i for i, seq in enumerate(self.active) if seq.job.cancelled]
        if gone:
            for i in gone:
                self.active[i].events.put(("cancelled", None))
            self._keep([i for i in range(len(self.active)) if i not in gone])
            if not self.active:
                return
        try:
            tokens = self._forward_step()
        except Exception as exc:  # noqa: BLE001 - every sequence in the step fails with it
            failed = list(self.active)
            self._reset()
            self._fail(failed, exc)
            return
        self.decode_steps += 1
        keep = []
        for i, (seq, token) in enumerate(zip(self.active, tokens, strict=True)):
            if self._emit(seq, token):
                keep.append(i)
        if len(keep) < len(self.active):
            self._keep(keep)

    def _forward_step(self) -> list[int]:
        """One decode step over the batch: feed each row's last token, return each row's next token."""
        mask = torch.cat([self.mask, self.mask.new_ones(len(self.active), 1)], dim=1)
        # The input ids stay on the device from the last step's choice (no host-to-device copy per step).
        # Without padding the mask is all ones: leaving it out lets attention take its unmasked fast path.
        out = self.model(input_ids=self.next_ids[:, None], attention_mask=mask if self.padded else None,
                         position_ids=self.positions[:, None], use_cache=True, **{self.cache_kw: self.cache})
        chosen = self._choose(out.logits[:, -1], self.active)
        self.mask = mask
        self.positions = self.positions + 1
        self.next_ids = chosen
        return chosen.tolist()  # the step's one host sync: tokens are streamed and checked for end ids

    def _choose(self, logits: torch.Tensor, seqs: list[Sequence]) -> torch.Tensor:
        return choose_tokens_tensor(logits, [s.params for s in seqs], [s.generator for s in seqs], self.shared)

    # --- per token --------------------------------------------------------------------------------
    def _emit(self, seq: Sequence, token: int) -> bool:
        """Record a token; True while the sequence goes on. A `NONFINITE` row ends its sequence with a
        NonFiniteOutput error (a JSON 500, or an error chunk once streaming); the batch goes on."""
        if token == NONFINITE:
            seq.events.put(("error", NonFiniteOutput("logits")))
            return False
        seq.generated.append(token)
        self.tokens_generated += 1
        try:
            seq.job.step()
        except JobCancelled:
            seq.events.put(("cancelled", None))
            return False
        seq.events.put(("token", token))
        if token in self.eos_ids:
            seq.events.put(("done", "stop"))
            return False
        if len(seq.generated) >= seq.max_new_tokens:
            seq.events.put(("done", "length"))
            return False
        return True

    def _fail(self, seqs: list[Sequence], exc: Exception) -> None:
        if is_out_of_memory(exc) and torch.cuda.is_available():
            torch.cuda.empty_cache()
        log.error("generation failed for %d sequence(s): %r", len(seqs), exc)
        for seq in seqs:
            seq.events.put(("error", exc))

    # --- batch bookkeeping ------------------------------------------------------------------------
    def _join(self, seq: Sequence, cache: DynamicCache, chosen: torch.Tensor) -> None:
        """Add a prefilled sequence (its cache, and its first token `chosen` (1,) on the device) to the batch."""
        length = len(seq.prompt_ids)
        ones = torch.ones(1, length, dtype=torch.long, device=self.device)
        position = torch.tensor([length], dtype=torch.long, device=self.device)
        if not self.active:
            self.cache, self.mask, self.positions, self.next_ids = cache, ones, position, chosen
        else:
            width = max(self.mask.shape[1], length)
            for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
                mine.keys = torch.cat([_pad_left(mine.keys, width), _pad_left(theirs.keys, width)], dim=0)
                mine.values = torch.cat([_pad_left(mine.values, width), _pad_left(theirs.values, width)], dim=0)
            self.mask = torch.cat([_pad_left(self.mask, width), _pad_left(ones, width)], dim=0)
            self.positions = torch.cat([self.positions, position])
            self.next_ids = torch.cat([self.next_ids, chosen])
        self.active.append(seq)
        self.padded = not bool(self.mask.all())
        self.max_batch_seen = max(self.max_batch_seen, len(self.active))

    def _keep(self, rows: list[int]) -> None:
        if not rows:
            self._reset()
            return
        index = torch.tensor(rows, dtype=torch.long, device=self.device)
        mask = self.mask.index_select(0, index)
        # Columns that hold padding for every remaining row are dead weight in every later step.
        start = int(torch.nonzero(mask.any(dim=0))[0, 0]) if mask.numel() else 0
        for layer in self.cache.layers:
            layer.keys = layer.keys.index_select(0, index)[:, :, start:]
            layer.values = layer.values.index_select(0, index)[:, :, start:]
        self.mask = mask[:, start:]
        self.padded = not bool(self.mask.all())
        self.positions = self.positions.index_select(0, index)
        self.next_ids = self.next_ids.index_select(0, index)
        self.active = [self.active[i] for i in rows]

    def _reset(self) -> None:
        self.active = []
        self.cache = self.mask = self.positions = self.next_ids = None


def _pad_left(t: torch.Tensor, width: int) -> torch.Tensor:
    """Zero-pad the sequence axis (dim 2 of a (batch, heads, seq, dim) cache tensor, dim 1 of a mask)."""
    axis = 2 if t.dim() == 4 else 1
    missing = width - t.shape[axis]
    if missing <= 0:
        return t
    shape = list(t.shape)
    shape[axis] = missing
    return torch.cat([t.new_zeros(shape), t], dim=axis)
