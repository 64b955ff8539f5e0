"""Next-token choice for a batch of sequences: greedy at temperature 0, otherwise temperature, top-k (-1 off)
and top-p (nucleus) sampling.

Every row is filtered in one batched pass (one sort for the whole batch, per-row temperature, k and p as
tensors), so the cost of a step does not grow with a Python loop over rows. Rows that asked for a `seed`
draw from their own generator, one `multinomial` call each, so a seeded request gets the same tokens whatever
else shares its batch; all unseeded rows draw together in one call from the engine's generator. The result
crosses to the host once per step (the engine needs the token ids to stream them and to see end ids).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = -1
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        # top_p == 0 keeps only the most likely token, which is greedy decoding too; so does a temperature
        # small enough to overflow the scaled logits.
        return self.temperature < 1e-5 or self.top_k == 1 or self.top_p == 0


def filter_logits(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Scaled, top-k and top-p filtered logits of one row (vocab,), -inf where a token is excluded."""
    return filter_rows(logits[None], [params])[0]


def to_device(values: list, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A small host list as a tensor on `device`. On CUDA it goes through pinned memory without blocking: a
    plain copy from pageable memory would wait for the step's forward pass queued before it."""
    t = torch.tensor(values, dtype=dtype)
    if device.type != "cuda":
        return t
    return t.pin_memory().to(device, non_blocking=True)


def filter_rows(logits: torch.Tensor, params: list[SamplingParams]) -> torch.Tensor:
    """`filter_logits` for every row of `logits` (rows, vocab) at once, each row with its own parameters."""
    rows, vocab = logits.shape
    dev = logits.device
    temperature = to_device([p.temperature for p in params], torch.float32, dev)
    logits = logits.float() / temperature[:, None]
    ks = [p.top_k if 0 < p.top_k < vocab else vocab for p in params]
    top_ps = [p.top_p for p in params]
    if min(ks) >= vocab and min(top_ps) >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    if min(ks) < vocab:
        # The k-th largest value of each row is its threshold (ties with it stay, as with topk).
        kth = sorted_logits.gather(1, to_device([k - 1 for k in ks], torch.long, dev)[:, None])
        logits = logits.masked_fill(logits < kth, float("-inf"))
        sorted_logits = sorted_logits.masked_fill(sorted_logits < kth, float("-inf"))
    if min(top_ps) < 1.0:
        probs = torch.softmax(sorted_logits, dim=-1)
        # Keep the smallest set holding top_p of the mass: drop a token once the tokens before it reach
        # top_p. The first always stays; rows with top_p == 1 drop nothing.
        p = to_device(top_ps, torch.float32, dev)[:, None]
        drop = ((torch.cumsum(probs, dim=-1) - probs) >= p) & (p < 1.0)
        drop[:, 0] = False
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return logits


NONFINITE = -1  # the "token" of a row whose logits hold NaN or +Infinity (or no finite value at all)


def choose_tokens(logits: torch.Tensor, params: list[SamplingParams],
                  generators: list[torch.Generator | None], shared: torch.Generator | None = None) -> list[int]:
    """One next token per row of `logits` (batch, vocab), with a single host sync for the whole batch.

    Args:
        logits: the step's last-position logits, one row per sequence.
        params: each row's sampling parameters.
        generators: each row's own generator (seeded requests), or None: the row draws from `shared`.
        shared: the generator of every row without its own (None: torch's default generator).

    Returns:
        A token id per row; `NONFINITE` for a row whose logits are not usable (NaN, +Infinity, or all
        -Infinity): argmax would pick an arbitrary id and sampling would raise for the whole batch.
    """
    return choose_tokens_tensor(logits, params, generators, shared).tolist()


def choose_tokens_tensor(logits: torch.Tensor, params: list[SamplingParams],
                         generators: list[torch.Generator | None],
                         shared: torch.Generator | None = None) -> torch.Tensor:
    """`choose_tokens` left on the logits' device (rows,), so a caller can feed it back without a round trip."""
    bad = torch.isnan(logits).any(dim=-1) | torch.isposinf(logits).any(dim=-1) | torch.isneginf(logits).all(dim=-1)
    chosen = torch.argmax(logits, dim=-1)
    sampled = [i for i, p in enumerate(params) if not p.greedy]
    if sampled:
        index = to_device(sampled, torch.long, logits.device)
        rows = logits.index_select(0, index)
        # An unusable row would make multinomial raise for every row: it samples from zeros instead (its
        # token is replaced by NONFINITE below), so no host sync is needed to find it first.
        rows = torch.where(bad.index_select(0, index)[:, None], torch.zeros_like(rows), rows)
        probs = torch.softmax(filter_rows(rows, [params[i] for i in sampled]), dim=-1)
        draws = torch.empty(len(sampled), dtype=torch.long, device=logits.device)
        own = [j for j, i in enumerate(sampled) if generators[i] is not None]
        for j in own:
            draws[j] = torch.multinomial(probs[j], 1, generator=generators[sampled[j]])[0]
        if len(own) < len(sampled):
            rest = to_device([j for j in range(len(sampled)) if generators[sampled[j]] is None], torch.long,
                             logits.device)
            draws.index_copy_(0, rest, torch.multinomial(probs.index_select(0, rest), 1, generator=shared)[:, 0])
        chosen = chosen.index_copy(0, index, draws)
    return torch.where(bad, NONFINITE, chosen)
