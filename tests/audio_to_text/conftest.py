"""Shared fixtures: one tiny synthetic Whisper large-v3 per session, served by one real uvicorn server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from runner_sdk import RunnerSettings
from runner_sdk.testing import RunningServer
from runners.audio_to_text.runner import AudioToTextRunner, WhisperOptions
from runners.audio_to_text.testaudio import encode, tone

MODEL_ID = "openai/whisper-large-v3"


class TinyWhisperOptions(WhisperOptions):
    """A small token budget: random weights never emit end-of-text."""

    whisper_max_new_tokens: int = 6
    whisper_batch_size: int | None = 2


class TinyWhisperRunner(AudioToTextRunner):
    """The real runner with a small token budget."""

    Options = TinyWhisperOptions


@pytest.fixture(scope="session")
def whisper_model_dir(tmp_path_factory) -> Path:
    from runners.audio_to_text.synth import synthesize

    model_dir = tmp_path_factory.mktemp("a2t-models")
    synthesize(MODEL_ID, model_dir, "tiny")
    return model_dir


@pytest.fixture(scope="session")
def a2t_settings(whisper_model_dir):
    def make(**overrides) -> RunnerSettings:
        base = dict(pipeline="audio-to-text", model_id=MODEL_ID, model_dir=whisper_model_dir, device="cpu",
                    capacity=2, queue_size=4)
        base.update(overrides)
        return RunnerSettings(**base)

    return make


@pytest.fixture(scope="session")
def a2t_server(a2t_settings):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")  # loading must never need the network
        with RunningServer(TinyWhisperRunner, a2t_settings()) as srv:
            assert httpx.get(srv.url + "/health").json()["status"] == "IDLE"
            yield srv


@pytest.fixture(scope="session")
def audio_files(tmp_path_factory):
    """Encoded once per session: {name: path}, named `audio` inside their own folder (no extension)."""
    cache: dict[tuple, Path] = {}
    root = tmp_path_factory.mktemp("a2t-audio")

    def get(fmt: str = "wav", seconds: float = 2.0, freq: float = 440.0) -> Path:
        key = (fmt, seconds, freq)
        if key not in cache:
            folder = root / f"{fmt}-{seconds}-{freq}"
            folder.mkdir()
            cache[key] = encode(tone(seconds, freq=freq), 16_000, fmt, folder / "audio")
        return cache[key]

    return get


def _post_audio(srv, audio, timeout: float = 120.0, **fields) -> httpx.Response:
    """A multipart upload as go-livepeer sends it: part `audio`, filename `audio`, application/octet-stream.
    `audio` is bytes, a path, or an open binary file (streamed)."""
    if isinstance(audio, (str, Path)):
        audio = Path(audio).read_bytes()
    return httpx.post(srv.url + "/audio-to-text", files={"audio": ("audio", audio, "application/octet-stream")},
                      data={k: str(v) for k, v in fields.items()}, timeout=timeout)


@pytest.fixture(scope="session")
def post_audio():
    return _post_audio


@pytest.fixture(scope="session")
def runner_stats():
    return lambda srv: httpx.get(srv.url + "/runner/info").json()["runner"]["stats"]
