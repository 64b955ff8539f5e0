"""/text-to-speech over a real server with a tiny VITS (MMS-TTS): WAV data URLs, sentences, seeds, errors."""

from __future__ import annotations

import httpx
import pytest

from runner_sdk import routes
from runner_sdk.conformance import check_response
from runner_sdk.testing import check_conformance
from runners.text_to_speech.runner import ROUTE
from runners.text_to_speech.text import split_sentences

VITS_ID = "facebook/mms-tts-eng"


def _say(srv, timeout: float = 120, **body) -> httpx.Response:
    return httpx.post(srv.url + "/text-to-speech", json=body, timeout=timeout)


def test_tts_hello_is_a_wav_at_the_models_rate(tts_server, decode_wav):
    r = _say(tts_server, text="Hello", model_id=VITS_ID)
    assert not check_response(r, routes.TEXT_TO_SPEECH)
    channels, width, rate, seconds = decode_wav(r)
    assert (channels, width, rate) == (1, 2, 16_000)
    assert 0.01 < seconds < 5.0


def test_tts_long_text_is_split_and_batched(tts_server, decode_wav):
    runner = tts_server.host.runner
    before = dict(runner.stats)
    text = "One small step. Another one follows! Is this the third? Yes, the fourth. And a fifth."
    _, _, rate, seconds = decode_wav(_say(tts_server, text=text, seed=3))
    assert runner.stats["sentences"] - before["sentences"] == 5
    assert runner.stats["batches"] - before["batches"] == 3  # TTS_BATCH_SIZE=2
    assert seconds > 4 * 0.12  # four pauses between five sentences, plus speech


def test_tts_seed_repeats_and_differs(tts_server):
    a = _say(tts_server, text="Hello there.", seed=7).json()
    b = _say(tts_server, text="Hello there.", seed=7).json()
    c = _say(tts_server, text="Hello there.", seed=8).json()
    assert a == b and a != c


@pytest.mark.parametrize("body, status, msg", [
    ({"text": ""}, 400, "Text input must be provided."),
    ({}, 400, "Text input must be provided."),
    ({"text": "   "}, 400, "Text input must be provided."),
    ({"text": "hi", "model_id": "parler-tts/parler-tts-large-v1"}, 400,
     f"pipeline configured with {VITS_ID} but called with parler-tts/parler-tts-large-v1"),
    ({"text": "x" * 5001}, 400, "Text is 5001 characters long; this runner accepts at most 5000."),
])
def test_tts_caller_errors(tts_server, body, status, msg):
    r = _say(tts_server, **body)
    assert r.status_code == status and r.json() == {"detail": {"msg": msg}}
    assert not check_response(r, routes.TEXT_TO_SPEECH)


def test_tts_schema_errors_and_unknown_fields(tts_server, decode_wav):
    null = _say(tts_server, text=None)
    assert null.status_code == 422 and null.json()["detail"][0]["type"] == "string_type"
    assert not check_response(null, routes.TEXT_TO_SPEECH)
    assert decode_wav(_say(tts_server, text="ok", colour="blue", description="A calm voice."))[2] == 16_000


def test_tts_conformance(tts_server):
    problems = check_conformance(tts_server.url, ROUTE, json={"text": "Hello"})
    assert not problems, "\n".join(problems)


def test_split_sentences():
    assert split_sentences("A b. C d!  E?\nF") == ["A b.", "C d!", "E?", "F"]
    long = "word " * 100
    pieces = split_sentences(long, max_chars=50)
    assert all(len(p) <= 50 for p in pieces) and " ".join(pieces).split() == long.split()
    assert split_sentences("x" * 120, max_chars=50) == ["x" * 50, "x" * 50, "x" * 20]


def test_tts_cancelled_job_stops_between_batches(tts_server):
    from runner_sdk import Job, JobCancelled
    from runners.text_to_speech.runner import Speech

    runner = tts_server.host.runner
    calls = []
    real = runner.backend.synthesize

    def counting(texts, description, seed, cancelled):
        calls.append(texts)
        job.cancel()  # the client goes away during the first batch
        return real(texts, description, seed, cancelled)

    job = Job()
    runner.backend.synthesize = counting
    try:
        with pytest.raises(JobCancelled):
            runner._synthesize(Speech(["One.", "Two.", "Three.", "Four.", "Five."], "", 1), job)
    finally:
        del runner.backend.synthesize
    assert len(calls) == 1  # TTS_BATCH_SIZE=2: the second and third batches never ran
