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
import queue
import secrets
import threading
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from runner_sdk import Job
from runner_sdk.errors import JobCancelled, is_out_of_memory
from runner_sdk.integrity import NonFiniteOutput

from .sampling import NONFINITE, SamplingParams, choose_tokens

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


@dataclass(eq=False)
class Sequence:
    prompt_ids: list[int]
    max_new_tokens: int
    params: SamplingParams
    job: Job
    events: queue.Queue = field(default_factory=queue.Queue)
    generated: list[int] = field(default_factory=list)
    generator: torch.Generator | None = None


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
        self.last: list[int] = []  # each row's newest token, not yet in the cache
        self.padded = False  # whether any row has left padding (checked when the batch changes)
        self._closed = False
        self.thread = threading.Thread(target=self._run, name="llm-engine", daemon=True)

    # --- public -----------------------------------------------------------------------------------
    def start(self) -> Engine:
        self.thread.start()
        return self

    def submit(self, prompt_ids: list[int], max_new_tokens: int, params: SamplingParams, job: Job) -> Sequence:
        gen = torch.Generator(device=self.device)
        gen.manual_seed(params.seed if params.seed is not None else secrets.randbits(63))
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
            token = choose_tokens(out.logits[:, -1], [seq.params], [seq.generator])[0]
        except Exception as exc:  # noqa: BLE001 - this request fails; the batch goes on
            self._fail([seq], exc)
            return
        if self._emit(seq, token):
            try:
                self._join(seq, cache, token)
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
                self.last[i] = token
        if len(keep) < len(self.active):
            self._keep(keep)

    def _forward_step(self) -> list[int]:
        """One decode step over the batch: feed each row's last token, return each row's next token."""
        mask = torch.cat([self.mask, self.mask.new_ones(len(self.active), 1)], dim=1)
        ids = torch.tensor(self.last, dtype=torch.long, device=self.device)[:, None]
        # Without padding the mask is all ones: leaving it out lets attention take its unmasked fast path.
        out = self.model(input_ids=ids, attention_mask=mask if self.padded else None,
                         position_ids=self.positions[:, None], use_cache=True, **{self.cache_kw: self.cache})
        tokens = choose_tokens(out.logits[:, -1], [s.params for s in self.active],
                               [s.generator for s in self.active])
        self.mask = mask
        self.positions = self.positions + 1
        return tokens

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
    def _join(self, seq: Sequence, cache: DynamicCache, token: int) -> None:
        length = len(seq.prompt_ids)
        ones = torch.ones(1, length, dtype=torch.long, device=self.device)
        position = torch.tensor([length], dtype=torch.long, device=self.device)
        if not self.active:
            self.cache, self.mask, self.positions = cache, ones, position
        else:
            width = max(self.mask.shape[1], length)
            for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
                mine.keys = torch.cat([_pad_left(mine.keys, width), _pad_left(theirs.keys, width)], dim=0)
                mine.values = torch.cat([_pad_left(mine.values, width), _pad_left(theirs.values, width)], dim=0)
            self.mask = torch.cat([_pad_left(self.mask, width), _pad_left(ones, width)], dim=0)
            self.positions = torch.cat([self.positions, position])
        self.active.append(seq)
        self.last.append(token)
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
        self.active = [self.active[i] for i in rows]
        self.last = [self.last[i] for i in rows]

    def _reset(self) -> None:
        self.active, self.last = [], []
        self.cache = self.mask = self.positions = None


def _pad_left(t: torch.Tensor, width: int) -> torch.Tensor:
    """Zero-pad the sequence axis (dim 2 of a (batch, heads, seq, dim) cache tensor, dim 1 of a mask)."""
    axis = 2 if t.dim() == 4 else 1
    missing = width - t.shape[axis]
    if missing <= 0:
        return t
    shape = list(t.shape)
    shape[axis] = missing
    return torch.cat([t.new_zeros(shape), t], dim=axis)
