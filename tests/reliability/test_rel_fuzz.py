"""Fuzzing: schemathesis against each runner's own OpenAPI document, then hand-made bad input (mutated
audio files, malformed and oversized JSON). Every answer has a status its route allows and a body of the
contract's shape (4.1, 4.2), and the runner still answers a valid request afterwards."""

from __future__ import annotations

import json
import random

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability.relkit import AUTH, answers_valid_request, idle, target_params
from schemathesis.generation import GenerationMode

from benchmarks.soak.targets import TARGETS, tone_file
from runner_sdk.conformance import check

EXAMPLES_PER_ROUTE = 20  # per generation mode (positive and negative); bounded for CI, deterministic (derandomize)


def _fuzz_settings(n: int):
    return settings(max_examples=n, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck), print_blob=True)


@pytest.mark.parametrize("target", target_params())
def test_schemathesis_every_answer_is_in_contract(target, servers):
    srv = servers(target)
    schema = schemathesis.openapi.from_url(srv.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert target.route.path in paths and "/health" in paths

    seen: dict[str, set[int]] = {}
    for op in operations:
        _fuzz_operation(op, srv.url, target, seen)
    # The fuzzer reached both sides of the route: some requests refused, and (positive mode) some served.
    assert seen[target.route.path] - {200}, seen
    assert idle(srv)
    answers_valid_request(srv.url, target)


def _fuzz_operation(op, url: str, target, seen: dict[str, set[int]]) -> None:
    generate = op.method.upper() == "POST"
    strategy = (st.one_of(op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE))
                if generate else op.as_strategy())

    @_fuzz_settings(EXAMPLES_PER_ROUTE * 2 if generate else 3)
    @given(case=strategy)
    def run(case):
        response = case.call(base_url=url, headers=AUTH, timeout=120)
        seen.setdefault(op.path, set()).add(response.status_code)
        if generate:
            problems = check(response, target.route)
            assert not problems, (case.as_curl_command(), problems)
        else:
            assert response.status_code == 200 and "application/json" in response.headers["content-type"]
            response.json()

    run()


# --- mutated media (audio-to-text) ------------------------------------------------------------------

def _flip_bits(data: bytes, rate: float, seed: int, skip: int = 0) -> bytes:
    rnd = random.Random(seed)
    out = bytearray(data)
    for i in rnd.sample(range(skip, len(out)), max(1, int(rate * (len(out) - skip)))):
        out[i] ^= 1 << rnd.randrange(8)
    return bytes(out)


def _mutations() -> list[tuple[str, bytes, str, str]]:
    """(case, bytes, filename, part content type): truncated, bit-flipped and wrongly labelled files."""
    wav, mp3, flac, m4a = (tone_file(f) for f in ("wav", "mp3", "flac", "m4a"))
    rnd = random.Random(1234)
    garbage = bytes(rnd.randrange(256) for _ in range(20_000))
    cases = [
        ("empty", b"", "audio", "application/octet-stream"),
        ("garbage", garbage, "audio", "application/octet-stream"),
        ("wav-header-then-random-bytes", wav[:44] + garbage, "audio.wav", "audio/wav"),
        ("wav-header-only", wav[:44], "audio.wav", "audio/wav"),
        ("wav-truncated-half", wav[: len(wav) // 2], "audio.wav", "audio/wav"),
        ("mp3-truncated-10-bytes", mp3[:10], "audio.mp3", "audio/mpeg"),
        ("mp3-truncated-half", mp3[: len(mp3) // 2], "audio.mp3", "audio/mpeg"),
        ("flac-truncated-100-bytes", flac[:100], "audio.flac", "audio/flac"),
        ("m4a-truncated-half", m4a[: len(m4a) // 2], "audio.m4a", "audio/mp4"),
        ("mp3-labelled-wav", mp3, "audio.wav", "audio/wav"),
        ("flac-labelled-mp3", flac, "audio.mp3", "audio/mpeg"),
        ("wav-labelled-text", wav, "notes.txt", "text/plain"),
        ("png-labelled-wav", b"\x89PNG\r\n\x1a\n" + garbage[:500], "audio.wav", "audio/wav"),
    ]
    for name, data in (("wav", wav), ("mp3", mp3), ("flac", flac), ("m4a", m4a)):
        cases.append((f"{name}-bit-flipped-1pct", _flip_bits(data, 0.01, seed=7), "audio", "application/octet-stream"))
        cases.append((f"{name}-header-bit-flipped", _flip_bits(data[:64], 0.2, seed=3) + data[64:], "audio",
                      "application/octet-stream"))
    return cases


@pytest.mark.parametrize("target", target_params(["fake-audio", "audio-to-text"]))
def test_mutated_audio_gets_a_clear_answer(target, servers):
    srv = servers(target)
    failures = []
    for case, data, filename, ctype in _mutations():
        r = httpx.post(srv.url + "/audio-to-text", headers=AUTH, timeout=120,
                       files={"audio": (filename, data, ctype)}, data={"return_timestamps": "true"})
        problems = check(r, target.route)
        # A malformed file is the caller's problem: 415 (or 400), never a runner fault (Q8, checklist 23);
        # a mutation that still decodes may be transcribed (200).
        if r.status_code not in {200, 400, 415}:
            problems.append(f"status {r.status_code} for malformed media: {r.text[:200]}")
        if problems:
            failures.append((case, problems))
    assert not failures, failures
    assert idle(srv)
    answers_valid_request(srv.url, target)


# --- malformed and oversized JSON -------------------------------------------------------------------

def _json_bodies(valid: dict) -> dict[str, tuple[bytes, str]]:
    """case -> (body, content type). All are the caller's mistakes: never a 500."""
    return {
        "empty": (b"", "application/json"),
        "truncated": (json.dumps(valid).encode()[:-3], "application/json"),
        "null": (b"null", "application/json"),
        "list": (b"[1, 2, 3]", "application/json"),
        "string": (b'"hello"', "application/json"),
        "number": (b"42", "application/json"),
        "invalid-utf8": (b'{"prompt": "\xff\xfe\xfd"}', "application/json"),
        "infinity": (json.dumps({**valid, "seed": float("inf"), "max_tokens": float("inf")}).encode(),
                     "application/json"),
        "wrong-types": (json.dumps({**valid, "prompt": ["a"], "messages": "hi", "width": "wide"}).encode(),
                        "application/json"),
        "over-8-MiB": (json.dumps({**valid, "junk": "x" * (8 * 1024 * 1024 + 10)}).encode(), "application/json"),
        "deeply-nested": (b"[" * 5_000 + b"]" * 5_000, "application/json"),
        # Parses, then is refused: the echoed `input` must not recurse 900 levels deep either.
        "nested-900": (b'{"prompt": ' + b"[" * 900 + b"]" * 900 + b', "messages": ' + b"[" * 900 + b"]" * 900 + b"}",
                       "application/json"),
        "form-encoded": (b"prompt=a+cat", "application/x-www-form-urlencoded"),
        "text-plain": (json.dumps(valid).encode(), "text/plain"),
        # Well-formed JSON whose values only the runner's own checks can refuse.
        "nan": (json.dumps({**valid, "temperature": float("nan"), "guidance_scale": float("nan")}).encode(),
                "application/json"),
        "huge-ints": (json.dumps({**valid, "seed": 10**30, "width": 10**12, "max_tokens": 10**30}).encode(),
                      "application/json"),
        "negative-sizes": (json.dumps({**valid, "width": -64, "height": -64, "max_tokens": -1}).encode(),
                           "application/json"),
        "duplicate-keys": (b'{"prompt": "a", "prompt": "", "messages": [], "messages": []}', "application/json"),
    }


RUNNER_LEVEL = {"nan", "huge-ints", "negative-sizes"}  # the SDK fakes do not validate values (only real runners)
JSON_TARGETS = ["fake-image", "fake-llm", "text-to-image", "llm"]


def _json_cases():
    for name in JSON_TARGETS:
        target = TARGETS[name]
        for case in _json_bodies(target.valid_request()["json"]):
            yield pytest.param(target, case, id=f"{name}-{case}")


@pytest.mark.parametrize("target, case", list(_json_cases()))
def test_malformed_and_oversized_json_gets_a_clear_answer(target, case, servers):
    srv = servers(target)
    body, ctype = _json_bodies(target.valid_request()["json"])[case]
    problems = []
    with httpx.Client(timeout=120) as client:
        try:
            r = client.post(srv.url + target.route.path, content=body, headers={**AUTH, "Content-Type": ctype})
            problems += check(r, target.route)
            if r.status_code == 500 and (target.real or case not in RUNNER_LEVEL):
                problems.append(f"500 for a caller's malformed body: {r.text[:200]}")
            # The same keep-alive connection still works (go-livepeer reuses its connections).
            again = client.post(srv.url + target.route.path, headers=AUTH, **target.valid_request())
            if again.status_code != 200:
                problems.append(f"next request on the connection: {again.status_code} {again.text[:200]}")
        except httpx.HTTPError as exc:
            problems.append(f"{type(exc).__name__}: {exc}")
    if problems:
        # No traceback: after a RecursionError in the server thread, formatting one can crash pytest itself.
        pytest.fail(f"{case}: {problems}", pytrace=False)
    assert idle(srv)


def test_every_registered_pipeline_has_a_reliability_target():
    from runner_sdk.pipelines import served

    real = {t.pipeline: t.runner_spec for t in TARGETS.values() if t.real}
    assert real == {p.name: p.runner for p in served()}  # a new pipeline in the registry joins this suite through benchmarks/soak/targets.py
