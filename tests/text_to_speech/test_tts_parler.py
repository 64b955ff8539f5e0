"""Parler-TTS (go-livepeer's default text-to-speech model) behind a real server. Needs the `parler-tts` package,
which pins transformers 4.46.1, so it runs in its own environment: `make tts-test` (part of `make test`) builds
.venv-tts and runs this file there; in the main environment it is skipped."""

from __future__ import annotations

import httpx
import pytest

pytest.importorskip("parler_tts")

from runner_sdk import routes  # noqa: E402
from runner_sdk.conformance import check_response  # noqa: E402
from runner_sdk.testing import check_conformance, serve  # noqa: E402
from runners.text_to_speech.runner import ROUTE, TextToSpeechRunner  # noqa: E402

LARGE, MINI = "parler-tts/parler-tts-large-v1", "parler-tts/parler-tts-mini-v1"
FRAMES = 30  # codec steps per sentence: 30 - 9 (the codebook delay) = 21 frames of 512 samples at 44.1 kHz


@pytest.fixture(scope="module")
def parler_dir(tmp_path_factory):
    from runners.text_to_speech.synth import synthesize

    model_dir = tmp_path_factory.mktemp("parler-models")
    for model_id in (LARGE, MINI):
        synthesize(model_id, model_dir, "tiny")
    return model_dir


@pytest.fixture(scope="module")
def parler_server(parler_dir):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        with serve(TextToSpeechRunner, model_id=LARGE, model_dir=parler_dir, capacity=2,
                   options={"tts_max_new_tokens": FRAMES, "tts_batch_size": 2}) as srv:
            yield srv


def _say(srv, **body) -> httpx.Response:
    return httpx.post(srv.url + "/text-to-speech", json=body, timeout=180)


def test_parler_hello_is_a_44k_wav(parler_server, decode_wav):
    r = _say(parler_server, text="Hello", model_id=LARGE)
    assert not check_response(r, routes.TEXT_TO_SPEECH)
    channels, width, rate, seconds = decode_wav(r)
    assert (channels, width, rate) == (1, 2, 44_100)
    assert 0.1 < seconds <= FRAMES * 512 / 44_100 + 0.01
    info = httpx.get(parler_server.url + "/runner/info").json()
    assert info["runner"]["model"] == "parler_tts"


def test_parler_sentences_description_and_seed(parler_server, decode_wav):
    text = "Hello world. A quick brown fox jumps! Is it over?"
    a = _say(parler_server, text=text, description="A female speaker with a calm voice.", seed=5)
    _, _, rate, seconds = decode_wav(a)
    assert seconds > 3 * 0.2 and parler_server.host.runner.stats["sentences"] >= 3
    assert a.json() == _say(parler_server, text=text, description="A female speaker with a calm voice.",
                            seed=5).json()


def test_parler_errors_and_conformance(parler_server):
    assert _say(parler_server, text="").json() == {"detail": {"msg": "Text input must be provided."}}
    r = _say(parler_server, text="hi", model_id=MINI)
    assert r.status_code == 400 and r.json()["detail"]["msg"] == f"pipeline configured with {LARGE} but called with {MINI}"
    problems = check_conformance(parler_server.url, ROUTE, json={"text": "Hello"})
    assert not problems, "\n".join(problems)


def test_parler_mini_loads(parler_dir, decode_wav, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with serve(TextToSpeechRunner, model_id=MINI, model_dir=parler_dir, options={"tts_max_new_tokens": 12}) as srv:
        assert decode_wav(_say(srv, text="Hi there."))[2] == 44_100
