"""The engines against transformers' own greedy `generate`, token for token, on a tiny random Llama: with the
forward of this transformers, with a forward that takes the cache as `past_key_values` (how transformers
before 5.24 names it; an unknown `cache=` would be swallowed by its **kwargs), and with neither (a clear load
error naming the installed version)."""

from __future__ import annotations

import inspect
import re

import httpx
import pytest
import torch

from runner_sdk import Job
from runner_sdk.testing import RunningServer
from runners.llm.backend_transformers import TransformersBackend
from runners.llm.engine import SUPPORTED_TRANSFORMERS, Engine, cache_keyword
from runners.llm.runner import LLMRunner
from runners.llm.sampling import SamplingParams
from runners.llm.static_engine import StaticEngine
from runners.llm.synth import llama_config

# (prompt length, new tokens): rows of different lengths (left padding), leaving the batch at different steps.
REQUESTS = [(5, 12), (11, 7), (3, 16), (8, 10)]
LATE = [(14, 6), (2, 9)]  # submitted while the first four decode: they join a running batch


@pytest.fixture(scope="module")
def tiny_model():
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    config = llama_config("tiny")
    config.eos_token_id = None  # neither the engine nor generate stops early: lengths are exact
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model


def prompts(count_and_lengths, seed: int) -> list[tuple[list[int], int]]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randint(0, 1000, (n,), generator=gen).tolist(), new) for n, new in count_and_lengths]


def reference(model, requests) -> list[list[int]]:
    """transformers' greedy decoding, one prompt at a time."""
    out = []
    with torch.inference_mode():
        for ids, new in requests:
            seq = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 do_sample=False, max_new_tokens=new)
            out.append(seq[0, len(ids):].tolist())
    return out


def tokens_of(seq) -> list[int]:
    tokens = []
    while True:
        kind, value = seq.events.get(timeout=60)
        if kind == "token":
            tokens.append(value)
        elif kind == "done":
            return tokens
        else:
            raise AssertionError(f"{kind}: {value!r}")


def run_engine(engine: Engine, first, late) -> list[list[int]]:
    """Submit `first` before the engine starts (one batch from the first step), `late` once it decodes."""
    greedy = SamplingParams(temperature=0)
    try:
        seqs = [engine.submit(ids, new, greedy, Job()) for ids, new in first]
        engine.start()
        kind, token = seqs[0].events.get(timeout=60)
        assert kind == "token"
        seqs += [engine.submit(ids, new, greedy, Job()) for ids, new in late]
        return [[token, *tokens_of(seqs[0])], *(tokens_of(s) for s in seqs[1:])]
    finally:
        engine.close()
        engine.thread.join(10)


def make_engine(kind: str, model) -> Engine:
    if kind == "static":
        return StaticEngine(model, "cpu", max_batch=4, eos_ids=set(), max_len=48)
    return Engine(model, "cpu", max_batch=4, eos_ids=set())


class PastKeyValuesForward:
    """The model's forward as transformers before 5.24 declares it: the cache is `past_key_values`, and
    **kwargs swallows any other keyword (such as `cache`) without a word."""

    def __init__(self, model):
        self.real = model.forward
        self.real_kw = cache_keyword(model)
        self.calls_with_cache = 0

    def __call__(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                 inputs_embeds=None, labels=None, use_cache=None, logits_to_keep=0, **kwargs):
        self.calls_with_cache += past_key_values is not None
        return self.real(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         inputs_embeds=inputs_embeds, labels=labels, use_cache=use_cache,
                         logits_to_keep=logits_to_keep, **{self.real_kw: past_key_values})


@pytest.fixture
def old_forward(tiny_model, monkeypatch):
    fake = PastKeyValuesForward(tiny_model)
    # nn.Module.__call__ calls self.forward, so an instance attribute replaces the method for every call.
    monkeypatch.setattr(tiny_model, "forward", fake, raising=False)
    params = inspect.signature(tiny_model.forward).parameters
    assert "past_key_values" in params and "cache" not in params
    return fake


@pytest.mark.parametrize("kind", ["dynamic", "static"])
def test_greedy_engine_equals_generate(tiny_model, kind):
    first, late = prompts(REQUESTS, 1), prompts(LATE, 2)
    expected = reference(tiny_model, first + late)
    engine = make_engine(kind, tiny_model)
    assert engine.cache_kw == cache_keyword(tiny_model)
    assert run_engine(engine, first, late) == expected
    assert engine.max_batch_seen == 4
    assert len({tuple(t) for t in expected}) == len(expected)  # distinct outputs: the comparison has teeth


@pytest.mark.parametrize("kind", ["dynamic", "static"])
def test_a_past_key_values_forward_gets_the_cache(tiny_model, old_forward, kind):
    first, late = prompts(REQUESTS, 3), prompts(LATE, 4)
    with pytest.MonkeyPatch.context() as mp:  # the reference runs on the model's own forward
        mp.delattr(tiny_model, "forward")
        expected = reference(tiny_model, first + late)
    engine = make_engine(kind, tiny_model)
    assert engine.cache_kw == "past_key_values"
    assert run_engine(engine, first, late) == expected
    assert old_forward.calls_with_cache > 0


class NoCacheModel(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        raise AssertionError("never called")


@pytest.mark.parametrize("kind", ["dynamic", "static"])
def test_a_forward_without_a_cache_keyword_fails_at_construction(kind):
    import transformers

    with pytest.raises(RuntimeError, match=re.escape(transformers.__version__)) as info:
        make_engine(kind, NoCacheModel(llama_config("tiny")))
    assert SUPPORTED_TRANSFORMERS in str(info.value)


class NoCacheBackend(TransformersBackend):
    """The real backend, but its model's forward names no cache keyword (as a future transformers might)."""

    def _make_engine(self, ctx):
        def forward(input_ids=None, attention_mask=None, **kwargs):
            raise AssertionError("never called")

        self.model.forward = forward
        return super()._make_engine(ctx)


class NoCacheRunner(LLMRunner):
    def make_backend(self):
        return NoCacheBackend(self)


def test_the_runner_reports_the_unsupported_transformers_in_health(llm_settings):
    import transformers

    with RunningServer(NoCacheRunner, llm_settings()) as srv:
        health = httpx.get(srv.url + "/health").json()
        assert health["status"] == "ERROR"
        assert transformers.__version__ in health["error"] and SUPPORTED_TRANSFORMERS in health["error"]
