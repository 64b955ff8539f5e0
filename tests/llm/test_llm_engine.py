"""The engine behind /llm: failures mid-stream, disconnects stopping generation, batching that changes
nothing in the outputs."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from runner_sdk.testing import RunningServer
from runners.llm.runner import LLMRunner

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


class FlakyModel:
    """Wraps the model; raises once `fail_in` decode steps (or a prefill, with `fail_prefill`) have run.
    With `banned` token ids (the end-of-reply ids), the random model never stops on its own, so a long
    generation only ends by max_tokens or cancellation."""

    def __init__(self, model):
        self.model = model
        self.config = model.config
        self.fail_in: int | None = None
        self.fail_prefill = False
        self.banned: list[int] = []

    def __call__(self, **kwargs):
        if kwargs["input_ids"].shape[1] > 1 and self.fail_prefill:
            self.fail_prefill = False
            raise RuntimeError("injected prefill failure")
        if kwargs["input_ids"].shape[1] == 1 and self.fail_in is not None:
            self.fail_in -= 1
            if self.fail_in <= 0:
                self.fail_in = None
                raise RuntimeError("injected engine failure")
        out = self.model(**kwargs)
        out.logits[..., self.banned] = float("-inf")
        return out


class FlakyRunner(LLMRunner):
    def setup(self, ctx):
        super().setup(ctx)
        self.engine.model = FlakyModel(self.model)
        self.engine.model.banned = sorted(self.engine.eos_ids)


@pytest.fixture(scope="module")
def flaky_server(llm_settings):
    with RunningServer(FlakyRunner, llm_settings(capacity=2)) as srv:
        yield srv


def sse_events(raw: bytes) -> list[bytes]:
    assert raw.endswith(b"\n\n")
    return raw[:-2].split(b"\n\n")


def test_failure_mid_stream_ends_with_error_chunk_then_done(flaky_server):
    flaky = flaky_server.host.runner.engine.model
    flaky.fail_in = 3
    with httpx.stream("POST", flaky_server.url + "/llm", timeout=60,
                      json={"messages": QUESTION, "max_tokens": 50, "stream": True}) as r:
        raw = r.read()
    assert r.status_code == 200
    lines = sse_events(raw)
    assert lines[-1] == b"data: [DONE]"
    events = [json.loads(line.removeprefix(b"data: ")) for line in lines[:-1]]
    assert all(e["choices"] for e in events) and b'"error"' not in raw.replace(b'"finish_reason":"error"', b"")
    final = events[-1]
    assert final["choices"][0]["finish_reason"] == "error"
    assert final["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [e["choices"][0]["finish_reason"] for e in events[:-1]] == [""] * (len(events) - 1)
    assert final["id"] == events[0]["id"]
    assert final["usage"]["completion_tokens"] == events[-2]["usage"]["completion_tokens"] >= 1
    # The engine recovered: the next request is served normally.
    ok = httpx.post(flaky_server.url + "/llm", json={"messages": QUESTION, "max_tokens": 3}, timeout=60)
    assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_failure_before_the_first_token_is_a_500_json(flaky_server, stream):
    flaky_server.host.runner.engine.model.fail_prefill = True
    with httpx.stream("POST", flaky_server.url + "/llm", timeout=60,
                      json={"messages": QUESTION, "max_tokens": 5, "stream": stream}) as r:
        raw = r.read()
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    assert json.loads(raw) == {"detail": {"msg": "Internal server error during LLM processing."}}


def wait_idle(srv, timeout: float = 10.0) -> None:
    engine = srv.host.runner.engine
    deadline = time.monotonic() + timeout
    while engine.batch_size or srv.host.capacity.in_flight:
        assert time.monotonic() < deadline, "generation did not stop"
        time.sleep(0.01)


def test_stream_disconnect_stops_generation(flaky_server):
    engine = flaky_server.host.runner.engine
    wait_idle(flaky_server)
    before = engine.tokens_generated
    max_tokens = 8000
    with httpx.stream("POST", flaky_server.url + "/llm", timeout=60,
                      json={"messages": QUESTION, "max_tokens": max_tokens, "stream": True, "temperature": 0}) as r:
        seen = 0
        for line in r.iter_lines():
            if line.startswith("data: "):
                seen += 1
            if seen == 3:
                break  # leaving the block closes the connection
    wait_idle(flaky_server)
    generated = engine.tokens_generated - before
    time.sleep(0.2)
    assert engine.tokens_generated - before == generated  # nothing runs on after the stop
    assert 3 <= generated < max_tokens // 4, generated
    assert httpx.get(flaky_server.url + "/health").json()["status"] == "IDLE"


def test_non_stream_disconnect_stops_generation(flaky_server):
    engine = flaky_server.host.runner.engine
    wait_idle(flaky_server)
    before = engine.tokens_generated
    try:
        r = httpx.post(flaky_server.url + "/llm", json={"messages": QUESTION, "max_tokens": 8000, "temperature": 0}, timeout=0.5)
        pytest.fail(f"answered before the timeout: {r.status_code} {r.text[:300]}")
    except httpx.ReadTimeout:
        pass
    wait_idle(flaky_server)
    generated = engine.tokens_generated - before
    assert 1 <= generated < 8000 // 4, generated


# --- batching -------------------------------------------------------------------------------------

PROMPTS = [
    ([{"role": "user", "content": "Hi"}], 24),
    ([{"role": "system", "content": "You are a helpful assistant. Answer in one sentence."},
      {"role": "user", "content": "Tell me a story about a cat and a dog."}], 40),
    ([{"role": "user", "content": "What is the capital of France?"}], 16),
    ([{"role": "user", "content": "Write a short poem about the sea and the sky at night, please."}], 32),
]


def generate(url: str, messages, max_tokens: int, stream: bool = False, **sampling) -> tuple[str, dict]:
    body = {"messages": messages, "max_tokens": max_tokens, "temperature": 0, "stream": stream, **sampling}
    if not stream:
        data = httpx.post(url + "/llm", json=body, timeout=120).json()
        return data["choices"][0]["message"]["content"], data["usage"]
    with httpx.stream("POST", url + "/llm", json=body, timeout=120) as r:
        events = [json.loads(x[6:]) for x in r.iter_lines() if x.startswith("data: {")]
    return "".join(e["choices"][0]["delta"]["content"] for e in events), events[-1]["usage"]


def run_concurrently(url: str, stagger: float) -> list:
    results: list = [None] * len(PROMPTS)
    start = threading.Barrier(len(PROMPTS))

    def run(i: int) -> None:
        start.wait()
        time.sleep(stagger * i)
        results[i] = generate(url, *PROMPTS[i], stream=bool(i % 2))  # streams and plain requests mixed
        if i == 0:  # a seeded sampled request rides along: its draw does not depend on the batch either
            results.append(generate(url, *PROMPTS[0], temperature=1.0, top_p=0.9, seed=3))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_batched_greedy_outputs_equal_one_by_one(llm_settings):
    with RunningServer(LLMRunner, llm_settings(capacity=4)) as srv:
        alone = [generate(srv.url, m, n) for m, n in PROMPTS]
        alone.append(generate(srv.url, *PROMPTS[0], temperature=1.0, top_p=0.9, seed=3))
        engine = srv.host.runner.engine
        assert engine.max_batch_seen == 1
        for stagger in (0.0, 0.03):  # all four at once, then staggered so sequences join a running batch
            assert run_concurrently(srv.url, stagger) == alone
        assert engine.max_batch_seen == 4  # they really shared decode steps
        assert len({text for text, _ in alone}) == len(alone)  # distinct answers, so the check has teeth


def test_static_cache_engine_matches_and_survives_shifts(llm_settings, flaky_server, monkeypatch):
    """LLM_STATIC_CACHE=1 (CPU, uncompiled): a long stream is joined by a longer prompt (rows shift right),
    then the write column reaches the end of the window (a shift left); the outputs equal the one-by-one
    outputs of the default engine. Both servers ban the end-of-reply tokens, so lengths are exact."""
    long_b = ([{"role": "system", "content": "You are a helpful assistant. " * 20},
               {"role": "user", "content": "Tell me a story."}], 40)
    tokenizer = flaky_server.host.runner.tokenizer
    window = len(flaky_server.host.runner.prompt_ids(long_b[0])) + 100
    long_a = ([{"role": "user", "content": "Hi"}], window - 79)  # 79 prompt tokens: the whole window
    assert len(flaky_server.host.runner.prompt_ids(long_a[0])) == 79 and tokenizer is not None
    expected = [generate(flaky_server.url, *long_a, stream=True), generate(flaky_server.url, *long_b)]
    monkeypatch.setenv("LLM_STATIC_CACHE", "1")
    monkeypatch.setenv("MAX_MODEL_LEN", str(window))
    with RunningServer(FlakyRunner, llm_settings(capacity=2)) as srv:
        engine = srv.host.runner.engine
        assert type(engine).__name__ == "StaticEngine" and engine.max_len == window
        assert "STATIC_CACHE" in srv.host.info()["optimisations_applied"]
        results: dict = {}
        started = threading.Event()

        def stream_a() -> None:
            body = {"messages": long_a[0], "max_tokens": long_a[1], "temperature": 0, "stream": True}
            with httpx.stream("POST", srv.url + "/llm", json=body, timeout=120) as r:
                events = []
                for line in r.iter_lines():
                    if line.startswith("data: {"):
                        events.append(json.loads(line[6:]))
                        if len(events) == 3:
                            started.set()
            results["a"] = ("".join(e["choices"][0]["delta"]["content"] for e in events), events[-1]["usage"])

        thread = threading.Thread(target=stream_a)
        thread.start()
        assert started.wait(60)
        results["b"] = generate(srv.url, *long_b)
        thread.join(120)
        assert [results["a"], results["b"]] == expected
        assert results["a"][1]["completion_tokens"] == long_a[1]
        assert engine.shifts["right"] >= 1 and engine.shifts["left"] >= 1, engine.shifts
        assert engine.max_batch_seen == 2
        # Over-long requests are still refused against the smaller window.
        r = httpx.post(srv.url + "/llm", json={"messages": long_a[0], "max_tokens": long_a[1] + 1})
        assert r.status_code == 400 and str(window) in r.json()["detail"]["msg"]


def test_cuda_only_options_are_noted_on_the_cpu(llm_settings, monkeypatch):
    monkeypatch.setenv("QUANTIZE", "int4")
    monkeypatch.setenv("LLM_COMPILE", "1")
    with RunningServer(LLMRunner, llm_settings(capacity=1)) as srv:
        info = srv.host.info()
        assert info["status"] == "IDLE" and info["dtype"] == "float32"
        notes = " ".join(info["notes"])
        assert "QUANTIZE=int4 ignored" in notes and "LLM_COMPILE ignored" in notes
        assert "QUANTIZE" not in info["optimisations_applied"] and "COMPILE" not in info["optimisations_applied"]
        assert type(srv.host.runner.engine).__name__ == "StaticEngine"  # the static cache itself runs anywhere
        r = httpx.post(srv.url + "/llm", json={"messages": QUESTION, "max_tokens": 2}, timeout=60)
        assert r.status_code == 200


def test_stock_image_llm_settings_are_read_or_noted(llm_settings, monkeypatch):
    """The stock image's env: USE_8BIT means int8 (noted as CUDA-only here), vLLM-only knobs are noted."""
    monkeypatch.delenv("QUANTIZE", raising=False)
    monkeypatch.setenv("USE_8BIT", "true")
    monkeypatch.setenv("GPU_MEMORY_UTILIZATION", "0.9")
    with RunningServer(LLMRunner, llm_settings(capacity=1)) as srv:
        info = srv.host.info()
        assert info["status"] == "IDLE"
        notes = " ".join(info["notes"])
        assert "QUANTIZE=int8 ignored" in notes and "GPU_MEMORY_UTILIZATION ignored" in notes


def test_bad_quantize_value_is_an_error_state(llm_settings, monkeypatch):
    monkeypatch.setenv("QUANTIZE", "int3")
    with RunningServer(LLMRunner, llm_settings()) as srv:
        info = srv.host.info()
        assert info["status"] == "ERROR" and "QUANTIZE" in info["error"]


def test_a_failure_in_batch_bookkeeping_fails_those_requests_and_the_engine_goes_on(flaky_server):
    engine = flaky_server.host.runner.engine
    wait_idle(flaky_server)
    real_join = engine._join

    def broken_join(*args):
        engine._join = real_join  # once
        raise RuntimeError("injected bookkeeping failure")

    engine._join = broken_join
    r = httpx.post(flaky_server.url + "/llm", json={"messages": QUESTION, "max_tokens": 5}, timeout=60)
    assert r.status_code == 500 and r.json() == {"detail": {"msg": "Internal server error during LLM processing."}}
    assert engine.thread.is_alive() and engine.batch_size == 0
    ok = httpx.post(flaky_server.url + "/llm", json={"messages": QUESTION, "max_tokens": 5}, timeout=60)
    assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] == 5


def test_tokens_queued_before_a_failure_are_sent_before_it(tokenizer):
    """The job thread merges what the engine already queued: tokens that precede an error still go out first
    (so a failure after the first token is always the error chunk after a 200, never a 500 JSON)."""
    import queue
    import types

    from runner_sdk import Job
    from runners.llm.backend_transformers import TransformersBackend
    from runners.llm.engine import Sequence
    from runners.llm.sampling import SamplingParams

    backend = object.__new__(TransformersBackend)
    backend.tokenizer, backend.max_chunk_tokens = tokenizer, 16
    backend.engine = types.SimpleNamespace(thread=types.SimpleNamespace(is_alive=lambda: True))
    seq = Sequence([1], 8, SamplingParams(), Job(), events=queue.Queue())
    ids = tokenizer(" Paris", add_special_tokens=False)["input_ids"]
    for token in ids:
        seq.events.put(("token", token))
    seq.events.put(("error", RuntimeError("engine failed")))
    events = backend._events(seq)
    assert next(events) == ("text", " Paris", len(ids))
    with pytest.raises(RuntimeError, match="engine failed"):
        next(events)
