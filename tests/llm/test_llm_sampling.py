"""Batched sampling (sampling.py): the same choices as filtering and drawing row by row, seeded rows that do
not depend on their batch neighbours, unseeded rows drawn together with the right distribution, unusable
rows marked without failing the batch; and the engine's CPU thread policy."""

from __future__ import annotations

import pytest
import torch

from runners.llm import engine as engine_mod
from runners.llm.sampling import NONFINITE, SamplingParams, choose_tokens, filter_logits, filter_rows

MIXED = [SamplingParams(temperature=0.7), SamplingParams(temperature=1.3, top_k=5),
         SamplingParams(temperature=0.9, top_p=0.8), SamplingParams(temperature=1.0, top_k=20, top_p=0.5),
         SamplingParams(temperature=2.0, top_p=1.0), SamplingParams(temperature=0.5, top_k=1)]


def _one_row(logits: torch.Tensor, p: SamplingParams) -> torch.Tensor:
    """The row-by-row filter this module replaced: the reference the batched one must equal."""
    logits = logits.float() / p.temperature
    if 0 < p.top_k < logits.shape[-1]:
        logits = logits.masked_fill(logits < torch.topk(logits, p.top_k).values[-1], float("-inf"))
    if p.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        drop = (torch.cumsum(probs, dim=-1) - probs) >= p.top_p
        drop[0] = False
        logits = logits.masked_fill(drop.scatter(0, order, drop), float("-inf"))
    return logits


def test_batched_filter_equals_the_row_by_row_filter():
    logits = torch.randn(len(MIXED), 300, generator=torch.Generator().manual_seed(0)) * 3
    batched = filter_rows(logits, MIXED)
    for row, p in enumerate(MIXED):
        assert torch.equal(batched[row], _one_row(logits[row], p)), p
        assert torch.equal(filter_logits(logits[row], p), _one_row(logits[row], p))


def test_seeded_rows_draw_the_same_tokens_whatever_their_neighbours():
    gen = torch.Generator().manual_seed(1)
    target = torch.randn(200, generator=gen)
    seeded = SamplingParams(temperature=1.0, top_p=0.9, seed=7)

    def draws(neighbours: int, position: int) -> list[int]:
        own = torch.Generator().manual_seed(7)
        shared = torch.Generator().manual_seed(neighbours)  # a different stream for the unseeded rows
        tokens = []
        for step in range(20):
            rows = torch.randn(neighbours + 1, 200, generator=torch.Generator().manual_seed(step))
            rows[position] = target
            params = [SamplingParams(temperature=1.0)] * (neighbours + 1)
            params[position] = seeded
            gens = [None] * (neighbours + 1)
            gens[position] = own
            tokens.append(choose_tokens(rows, params, gens, shared)[position])
        return tokens

    alone = draws(0, 0)
    assert draws(3, 0) == alone and draws(5, 4) == alone and draws(2, 1) == alone
    # The same generator drawing row by row from the reference filter gives these tokens too.
    own = torch.Generator().manual_seed(7)
    reference = [int(torch.multinomial(torch.softmax(_one_row(target, seeded), -1), 1, generator=own))
                 for _ in range(20)]
    assert alone == reference


def test_unseeded_rows_drawn_together_follow_the_distribution():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    rows = 4000
    logits = torch.log(probs).expand(rows, -1).clone()
    params = [SamplingParams(temperature=1.0)] * rows
    tokens = choose_tokens(logits, params, [None] * rows, torch.Generator().manual_seed(3))
    freq = torch.bincount(torch.tensor(tokens), minlength=4).float() / rows
    assert torch.allclose(freq, probs, atol=0.03), freq
    # top_k=2 on the same rows: only the two most likely tokens, in proportion 0.5 : 0.3.
    tokens = choose_tokens(logits, [SamplingParams(temperature=1.0, top_k=2)] * rows, [None] * rows,
                           torch.Generator().manual_seed(4))
    freq = torch.bincount(torch.tensor(tokens), minlength=4).float() / rows
    assert freq[2:].sum() == 0 and abs(freq[0] - 0.625) < 0.03, freq


def test_greedy_rows_and_unusable_rows_in_a_sampled_batch():
    logits = torch.randn(5, 50, generator=torch.Generator().manual_seed(2))
    logits[1, 3] = float("nan")
    logits[3] = float("-inf")
    params = [SamplingParams(temperature=0), SamplingParams(temperature=1.0), SamplingParams(temperature=0.8),
              SamplingParams(temperature=1.0, seed=3), SamplingParams(top_k=1, temperature=1.0)]
    gens = [None, None, None, torch.Generator().manual_seed(3), None]
    tokens = choose_tokens(logits, params, gens, torch.Generator().manual_seed(0))
    assert tokens[1] == NONFINITE and tokens[3] == NONFINITE
    assert tokens[0] == int(logits[0].argmax()) and tokens[4] == int(logits[4].argmax())
    assert 0 <= tokens[2] < 50


def test_engine_threads_leave_a_core_for_the_serving_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr(engine_mod, "available_cores", lambda: 2)
    assert engine_mod.engine_cpu_threads() == 1
    monkeypatch.setattr(engine_mod, "available_cores", lambda: 1)
    assert engine_mod.engine_cpu_threads() == 1
    monkeypatch.setattr(engine_mod, "available_cores", lambda: 64)
    assert engine_mod.engine_cpu_threads() == min(torch.get_num_threads(), 63)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the operator's choice stands
    assert engine_mod.engine_cpu_threads() is None


@pytest.mark.parametrize("quota, expected", [("max 100000", 8), ("150000 100000", 2), ("50000 100000", 1)])
def test_available_cores_reads_the_cgroup_quota(monkeypatch, tmp_path, quota, expected):
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text(quota + "\n")
    monkeypatch.setattr(engine_mod.os, "sched_getaffinity", lambda _pid: set(range(8)))
    real_path = engine_mod.Path
    monkeypatch.setattr(engine_mod, "Path", lambda p: cpu_max if p == "/sys/fs/cgroup/cpu.max" else real_path(p))
    assert engine_mod.available_cores() == expected


def test_engine_thread_count_stays_in_the_engine_thread():
    import threading

    from runners.llm.engine import Engine

    seen = {}
    before = torch.get_num_threads()

    def engine_thread():
        Engine._set_threads(1)
        seen["engine"] = torch.get_num_threads()

    t = threading.Thread(target=engine_thread)
    t.start()
    t.join()
    later = threading.Thread(target=lambda: seen.update(later=torch.get_num_threads()))
    later.start()
    later.join()
    assert seen == {"engine": 1, "later": before} and torch.get_num_threads() == before
