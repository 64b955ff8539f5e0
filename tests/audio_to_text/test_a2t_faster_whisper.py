"""BACKEND=faster-whisper: a clear ERROR without the package; with it, a CTranslate2 conversion of the
synthetic Whisper served through the same routes."""

from __future__ import annotations

import sys

import httpx
import pytest

from runner_sdk.testing import RunningServer
from runners.audio_to_text.runner import AudioToTextRunner, WhisperOptions


class FasterWhisperOptions(WhisperOptions):
    backend: str = "faster-whisper"
    whisper_max_new_tokens: int = 6


class FasterWhisperRunner(AudioToTextRunner):
    Options = FasterWhisperOptions


def test_a2t_faster_whisper_missing_package_is_a_clear_error(a2t_settings, monkeypatch):
    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # import faster_whisper -> ImportError
    with RunningServer(FasterWhisperRunner, a2t_settings(capacity=1)) as srv:
        health = httpx.get(srv.url + "/health").json()
        assert health["status"] == "ERROR"
        assert "faster-whisper package" in health["error"]


def test_a2t_faster_whisper_serves_the_contract_shapes(a2t_settings, audio_files, post_audio, tmp_path_factory):
    pytest.importorskip("faster_whisper")
    pytest.importorskip("ctranslate2")
    from runners.audio_to_text.faster_whisper_backend import synthesize_ct2

    model_dir = tmp_path_factory.mktemp("a2t-ct2")
    synthesize_ct2("openai/whisper-large-v3", model_dir, "tiny")  # as Systran/faster-whisper-large-v3
    with RunningServer(FasterWhisperRunner, a2t_settings(model_dir=model_dir, capacity=1)) as srv:
        assert httpx.get(srv.url + "/health").json()["status"] == "IDLE"
        assert httpx.get(srv.url + "/runner/info").json()["runner"]["backend"] == "faster-whisper"
        path = audio_files("m4a-aac", 3.0)
        segments = post_audio(srv, path)
        assert segments.status_code == 200 and segments.json()["chunks"]
        assert all(len(c["timestamp"]) == 2 for c in segments.json()["chunks"])
        words = post_audio(srv, path, return_timestamps="word")
        assert words.status_code == 200
        assert all(isinstance(c["timestamp"][0], float) for c in words.json()["chunks"])
        none = post_audio(srv, path, return_timestamps="false")
        assert none.status_code == 200 and none.json()["chunks"] == [] and none.json()["text"]
        assert post_audio(srv, b"not audio at all").status_code == 415
