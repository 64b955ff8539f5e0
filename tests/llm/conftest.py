"""Shared fixtures for the LLM runner tests: tiny synthetic Llama 3.1 checkpoints built once per session,
and real servers (uvicorn on 127.0.0.1) serving them on the CPU."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from runner_sdk import RunnerSettings
from runner_sdk.hfcache import install_snapshot
from runner_sdk.testing import RunningServer

MODEL_ID = "meta-llama/Meta-Llama-3.1-8B-Instruct"
CHAIN_ID = "test-org/llama-chain"
# The chain model answers this whatever it is asked, greedily, then <|eot_id|>. Its tokens must be unique
# (the chain model's next token depends on the current token only).
CHAIN_TEXT = " Paris is nice."


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    from runners.llm.synth import synthesize

    root = tmp_path_factory.mktemp("llm-models")
    snapshot = synthesize(MODEL_ID, root, "tiny")
    _build_chain_model(snapshot, root)
    return root


def _build_chain_model(snapshot: Path, root: Path) -> None:
    """A copy of the tiny model rewired so greedy decoding deterministically emits CHAIN_TEXT, then stops.

    Every attention and MLP output projection is zeroed, so the last hidden state is the current token's
    embedding (RMS-normalised): the model becomes a bigram table, and lm_head row next(t) is set to
    token t's normalised embedding, scaled up. The chain starts at the generation prompt's last token.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(snapshot)
    model = AutoModelForCausalLM.from_pretrained(snapshot, dtype=torch.float32)
    prompt = tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True)
    start = tok(prompt, add_special_tokens=False)["input_ids"][-1]
    chain = tok(CHAIN_TEXT, add_special_tokens=False)["input_ids"]
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    path = [start, *chain, eot]
    assert len(set(path[:-1])) == len(path) - 1, "chain tokens must be unique"
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb = model.model.embed_tokens.weight
        head = torch.zeros_like(model.lm_head.weight)
        for current, following in zip(path[:-1], path[1:], strict=True):
            head[following] = 50.0 * emb[current] / emb[current].norm()
        model.lm_head.weight.copy_(head)
    out = root / "chain-src"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    shutil.copy(snapshot / "generation_config.json", out / "generation_config.json")
    (out / "chain.json").write_text(json.dumps({"path": path}))
    install_snapshot(out, root, CHAIN_ID)
    shutil.rmtree(out, ignore_errors=True)


def make_settings(model_dir: Path, model_id: str = MODEL_ID, capacity: int = 1, queue_size: int = 8):
    return RunnerSettings(pipeline="llm", model_id=model_id, model_dir=model_dir, device="cpu",
                          capacity=capacity, queue_size=queue_size, version="0.14.1-lpsdk.0.1.0")


@pytest.fixture(scope="session")
def llm_settings(model_dir):
    """make_settings bound to the session's model folder."""
    return lambda **kw: make_settings(model_dir, **kw)


@pytest.fixture(scope="session")
def server(model_dir):
    """The random tiny model, capacity 4 (shared by most tests: they must not rely on its counters)."""
    from runners.llm.runner import LLMRunner

    with RunningServer(LLMRunner, make_settings(model_dir, capacity=4)) as srv:
        assert httpx.get(srv.url + "/health").json()["status"] == "IDLE", srv.host.info()
        yield srv


@pytest.fixture(scope="session")
def chain_server(model_dir):
    from runners.llm.runner import LLMRunner

    with RunningServer(LLMRunner, make_settings(model_dir, CHAIN_ID, capacity=2)) as srv:
        assert httpx.get(srv.url + "/health").json()["status"] == "IDLE", srv.host.info()
        yield srv


@pytest.fixture(scope="session")
def chain():
    """(model id, the answer) of the chain model."""
    return CHAIN_ID, CHAIN_TEXT


@pytest.fixture(scope="session")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    from runner_sdk.resolve import resolve_snapshot

    return AutoTokenizer.from_pretrained(resolve_snapshot(MODEL_ID, model_dir, download=False))
