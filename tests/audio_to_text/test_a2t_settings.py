"""Runner settings from the environment: applied when valid, a clear ERROR when not."""

from __future__ import annotations

import httpx
import pytest

from runner_sdk.testing import RunningServer
from runners.audio_to_text.runner import AudioToTextRunner


@pytest.mark.parametrize("env,needle", [
    ({"WHISPER_MAX_NEW_TOKENS": "0"}, "WHISPER_MAX_NEW_TOKENS"),
    ({"WHISPER_MAX_NEW_TOKENS": "445"}, "WHISPER_MAX_NEW_TOKENS"),
    ({"WHISPER_BATCH_SIZE": "0"}, "WHISPER_BATCH_SIZE"),
    ({"BACKEND": "onnx"}, "BACKEND"),
])
def test_a2t_bad_settings_are_a_clear_error(env, needle, a2t_settings, monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with RunningServer(AudioToTextRunner, a2t_settings(capacity=1)) as srv:
        health = httpx.get(srv.url + "/health").json()
        assert health["status"] == "ERROR" and needle in health["error"]


def test_a2t_env_settings_are_applied(a2t_settings, monkeypatch, audio_files, post_audio):
    monkeypatch.setenv("WHISPER_MAX_NEW_TOKENS", "5")
    monkeypatch.setenv("WHISPER_BATCH_SIZE", "3")
    monkeypatch.setenv("WHISPER_MAX_AUDIO_S", "60")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with RunningServer(AudioToTextRunner, a2t_settings(capacity=1, sfast=True)) as srv:
        info = httpx.get(srv.url + "/runner/info").json()
        assert info["status"] == "IDLE" and info["dtype"] == "float32"
        assert {k: info["runner"][k] for k in ("backend", "max_new_tokens", "max_batch", "max_audio_s")} == {
            "backend": "transformers", "max_new_tokens": 5, "max_batch": 3, "max_audio_s": 60.0}
        assert any("SFAST has no effect" in note for note in info["notes"])
        assert post_audio(srv, audio_files("wav", 1.0)).status_code == 200
        assert post_audio(srv, audio_files("webm-opus", 61.0)).status_code == 400
