"""A tiny synthetic MMS-TTS (VITS) per session behind a real server; Parler-TTS tests run in .venv-tts."""

from __future__ import annotations

import base64
import io
import wave

import httpx
import pytest

VITS_ID = "facebook/mms-tts-eng"


def _decode_wav(r: httpx.Response) -> tuple[int, int, int, float]:
    """(channels, sample width, rate, seconds) of the WAV in a 200 answer's data URL."""
    assert r.status_code == 200, r.text
    url = r.json()["audio"]["url"]
    assert url.startswith("data:audio/wav;base64,")
    data = base64.b64decode(url.split(",", 1)[1], validate=True)
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    with wave.open(io.BytesIO(data)) as w:
        return w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes() / w.getframerate()


@pytest.fixture(scope="session")
def decode_wav():
    return _decode_wav


@pytest.fixture(scope="session")
def tts_model_dir(tmp_path_factory):
    from runners.text_to_speech.synth import synthesize

    model_dir = tmp_path_factory.mktemp("tts-models")
    synthesize(VITS_ID, model_dir, "tiny")
    return model_dir


@pytest.fixture(scope="session")
def tts_server(tts_model_dir):
    from runner_sdk.testing import serve
    from runners.text_to_speech.runner import TextToSpeechRunner

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        with serve(TextToSpeechRunner, model_id=VITS_ID, model_dir=tts_model_dir, capacity=2,
                   options={"tts_batch_size": 2}) as srv:
            yield srv
