"""/llm against a real server: the SSE framing byte for byte, exact usage, finish reasons, validation."""

from __future__ import annotations

import json
import re

import httpx
import pytest

MODEL_ID = "meta-llama/Meta-Llama-3.1-8B-Instruct"  # the id the conftest synthesises

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
EVENT = re.compile(rb"data: (\{[^\n]*\})\n\n")


def stream_raw(url: str, body: dict) -> tuple[httpx.Response, bytes]:
    with httpx.stream("POST", url + "/llm", json={**body, "stream": True}, timeout=60) as r:
        raw = r.read()
    return r, raw


def parse_events(raw: bytes) -> list[dict]:
    """Split a whole SSE body, failing on anything that is not `data: <json>\\n\\n` ... `data: [DONE]\\n\\n`."""
    assert raw.endswith(b"data: [DONE]\n\n"), raw[-200:]
    body = raw[: -len(b"data: [DONE]\n\n")]
    events, pos = [], 0
    while pos < len(body):
        m = EVENT.match(body, pos)
        assert m, f"bad framing at byte {pos}: {body[pos:pos + 80]!r}"
        events.append(json.loads(m.group(1)))
        pos = m.end()
    return events


def check_stream(events: list[dict]) -> None:
    """Contract 3.7 / checklist 26-27 on parsed events."""
    assert events
    ids = {e["id"] for e in events}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    finals = [i for i, e in enumerate(events) if e["choices"][0]["finish_reason"]]
    assert finals == [len(events) - 1], finals
    previous = 0
    for e in events:
        assert list(e) == ["id", "model", "created", "usage", "choices"]
        assert e["model"] in (MODEL_ID, "test-org/llama-chain")
        assert isinstance(e["created"], int)
        assert len(e["choices"]) >= 1
        choice = e["choices"][0]
        assert list(choice) == ["index", "finish_reason", "delta", "message"]
        assert choice["index"] == 0 and choice["message"] is None
        assert choice["delta"]["role"] == "assistant" and isinstance(choice["delta"]["content"], str)
        usage = e["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert usage["completion_tokens"] >= previous
        previous = usage["completion_tokens"]
    assert events[-1]["choices"][0]["delta"]["content"] == ""


def prompt_token_count(tokenizer, messages) -> int:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_stream_framing_byte_for_byte(server):
    r, raw = stream_raw(server.url, {"messages": QUESTION, "max_tokens": 12, "temperature": 0})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    events = parse_events(raw)
    check_stream(events)
    assert len(events) >= 2  # content chunks, then the final one
    for line in raw.split(b"\n"):
        assert line == b"" or line.startswith(b"data: ")
        assert len(line) < 8192
    assert not re.search(rb"^(event|id|retry):|^:", raw, re.M)
    assert events[-1]["choices"][0]["finish_reason"] == "length"
    assert events[-1]["usage"]["completion_tokens"] == 12


def test_stream_text_and_usage_equal_non_stream(server, tokenizer):
    body = {"messages": QUESTION, "max_tokens": 16, "temperature": 0}
    plain = httpx.post(server.url + "/llm", json=body, timeout=60)
    assert plain.status_code == 200 and plain.headers["content-type"] == "application/json"
    data = plain.json()
    assert list(data) == ["id", "model", "created", "usage", "choices"]
    assert data["id"].startswith("chatcmpl-") and data["model"] == MODEL_ID and isinstance(data["created"], int)
    (choice,) = data["choices"]
    assert list(choice) == ["index", "finish_reason", "delta", "message"]
    assert choice["delta"] is None and choice["message"]["role"] == "assistant"
    _, raw = stream_raw(server.url, body)
    events = parse_events(raw)
    assert "".join(e["choices"][0]["delta"]["content"] for e in events) == choice["message"]["content"]
    assert events[-1]["usage"] == data["usage"]
    assert data["usage"]["prompt_tokens"] == prompt_token_count(tokenizer, QUESTION)
    assert data["usage"]["completion_tokens"] == 16
    assert choice["finish_reason"] == "length"


def test_usage_counts_templated_prompt_with_system_and_history(server, tokenizer):
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Café? 日本"}]
    data = httpx.post(server.url + "/llm", json={"messages": messages, "max_tokens": 3}, timeout=60).json()
    assert data["usage"]["prompt_tokens"] == prompt_token_count(tokenizer, messages)
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.startswith("<|begin_of_text|>") and text.count("<|begin_of_text|>") == 1
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")  # Q5: the generation prompt


def test_stop_at_eot_and_length_cut(chain_server, chain, tokenizer):
    chain_id, chain_text = chain
    base = {"messages": QUESTION, "temperature": 0, "model": chain_id}
    done = httpx.post(chain_server.url + "/llm", json={**base, "max_tokens": 50}, timeout=60).json()
    chain = tokenizer(chain_text, add_special_tokens=False)["input_ids"]
    assert done["choices"][0]["message"]["content"] == chain_text
    assert done["choices"][0]["finish_reason"] == "stop"
    assert done["usage"]["completion_tokens"] == len(chain) + 1  # the answer and <|eot_id|>
    assert done["usage"]["prompt_tokens"] == prompt_token_count(tokenizer, QUESTION)

    cut = httpx.post(chain_server.url + "/llm", json={**base, "max_tokens": 2}, timeout=60).json()
    assert cut["choices"][0]["finish_reason"] == "length"
    assert cut["usage"]["completion_tokens"] == 2
    assert cut["choices"][0]["message"]["content"] == tokenizer.decode(chain[:2])

    one = httpx.post(chain_server.url + "/llm", json={**base, "max_tokens": 1}, timeout=60).json()
    assert one["choices"][0]["finish_reason"] == "length"  # checklist 28

    # The same in a stream: the final chunk says stop, the deltas spell the answer, then [DONE].
    _, raw = stream_raw(chain_server.url, {**base, "max_tokens": 50})
    events = parse_events(raw)
    check_stream(events)
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert "".join(e["choices"][0]["delta"]["content"] for e in events) == chain_text
    assert events[-1]["usage"] == done["usage"]


def test_seed_makes_sampling_reproducible(server):
    body = {"messages": QUESTION, "max_tokens": 10, "temperature": 1.0, "top_p": 0.95, "top_k": 50}
    a = httpx.post(server.url + "/llm", json={**body, "seed": 7}, timeout=60).json()
    b = httpx.post(server.url + "/llm", json={**body, "seed": 7}, timeout=60).json()
    c = httpx.post(server.url + "/llm", json={**body, "seed": 8}, timeout=60).json()
    text = [x["choices"][0]["message"]["content"] for x in (a, b, c)]
    assert text[0] == text[1]
    assert text[0] != text[2]


def test_model_field_equal_or_omitted_is_accepted(server):
    for extra in ({}, {"model": ""}, {"model": MODEL_ID}):
        r = httpx.post(server.url + "/llm", json={"messages": QUESTION, "max_tokens": 1, **extra}, timeout=60)
        assert r.status_code == 200, r.text


BAD = {
    "temperature above 2": ({"temperature": 3}, "temperature"),
    "negative temperature": ({"temperature": -0.1}, "temperature"),
    "top_p above 1": ({"top_p": 1.5}, "top_p"),
    "top_k zero": ({"top_k": 0}, "top_k"),
    "top_k -2": ({"top_k": -2}, "top_k"),
    "max_tokens zero": ({"max_tokens": 0}, "max_tokens"),
    "empty messages": ({"messages": []}, "messages"),
    "null messages": ({"messages": None}, None),
    "missing messages": ({"messages": "__drop__"}, None),
    "role tool": ({"messages": [{"role": "tool", "content": "x"}]}, "role"),
    "content parts": ({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}, None),
    "model mismatch": ({"model": "other/model"},
                       f"pipeline configured with {MODEL_ID} but called with other/model"),
    "beyond context": ({"max_tokens": 8192}, "context window"),
    "seed negative": ({"seed": -1}, "seed"),
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_validation_errors_are_400_json_before_any_sse_byte(server, case, stream):
    change, expected = BAD[case]
    body = {"messages": QUESTION, "max_tokens": 4, "stream": stream, **change}
    body = {k: v for k, v in body.items() if v != "__drop__"}
    with httpx.stream("POST", server.url + "/llm", json=body, timeout=60) as r:
        raw = r.read()
    assert r.status_code == 400, raw
    assert r.headers["content-type"] == "application/json"
    assert b"data:" not in raw
    detail = json.loads(raw)["detail"]
    assert isinstance(detail, dict) and isinstance(detail["msg"], str) and detail["msg"]
    if expected:
        assert expected in detail["msg"]
    if case == "model mismatch":
        assert detail["msg"] == expected  # the contract's text, no period


def test_null_body_is_400(server):
    r = httpx.post(server.url + "/llm", content=b"null", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "msg" in r.json()["detail"]
