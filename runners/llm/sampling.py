"""Next-token choice per sequence: greedy at temperature 0, otherwise temperature, top-k (-1 off) and
top-p (nucleus) sampling with the sequence's own generator, so a seeded request draws the same tokens
whatever else shares its batch."""

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
    logits = logits.float() / params.temperature
    if params.top_k > 0 and params.top_k < logits.shape[-1]:
        kth = torch.topk(logits, params.top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Keep the smallest set holding top_p of the mass: drop a token once the tokens before it reach
        # top_p. The first always stays.
        drop = (torch.cumsum(probs, dim=-1) - probs) >= params.top_p
        drop[0] = False
        logits = logits.masked_fill(drop.scatter(0, order, drop), float("-inf"))
    return logits


NONFINITE = -1  # the "token" of a row whose logits hold NaN or +Infinity (or no finite value at all)


def choose_tokens(logits: torch.Tensor, params: list[SamplingParams],
                  generators: list[torch.Generator | None]) -> list[int]:
    """One next token per row of `logits` (batch, vocab), with one host sync for the whole batch when every
    row is greedy. A row whose logits are not usable (NaN, +Infinity, or all -Infinity) gets `NONFINITE`
    instead of a token: argmax would pick an arbitrary id and sampling would raise for the whole batch.
    """
    bad = torch.isnan(logits).any(dim=-1) | torch.isposinf(logits).any(dim=-1) | torch.isneginf(logits).all(dim=-1)
    chosen = torch.where(bad, NONFINITE, torch.argmax(logits, dim=-1))
    if all(p.greedy for p in params):
        return chosen.tolist()
    bad_rows = bad.tolist()
    for row, (p, gen) in enumerate(zip(params, generators, strict=True)):
        if not p.greedy and not bad_rows[row]:
            probs = torch.softmax(filter_logits(logits[row], p), dim=-1)
            chosen[row] = torch.multinomial(probs, 1, generator=gen)[0]
    return chosen.tolist()
