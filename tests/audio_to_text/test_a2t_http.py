"""/audio-to-text over a real server and real multipart uploads, as go-livepeer sends them."""

from __future__ import annotations

import json
import struct

import httpx
import numpy as np
import pytest

from runners.audio_to_text import runner as runner_module
from runners.audio_to_text.testaudio import FORMATS, video_only

UNSUPPORTED = {"detail": {"msg": "Unsupported audio format or malformed file."}}
LIMIT = 52_428_800


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_a2t_every_format_transcribes(fmt, a2t_server, audio_files, post_audio):
    r = post_audio(a2t_server, audio_files(fmt, 2.0), return_timestamps="false", metadata='{"duration":"2"}')
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"text", "chunks"} and isinstance(body["text"], str) and body["chunks"] == []
    assert "transcribe" in r.headers["server-timing"]


def test_a2t_mp3_with_encoder_delay_is_not_415(a2t_server, audio_files, post_audio):
    # The stock runner answers 415 for exactly this file (Q9): its first decoded frame has 47 samples.
    r = post_audio(a2t_server, audio_files("mp3", 3.0))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("kind", ["garbage", "empty", "video-only"])
def test_a2t_undecodable_uploads_get_415(kind, a2t_server, post_audio, tmp_path):
    if kind == "garbage":
        data = np.random.default_rng(1).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    elif kind == "empty":
        data = b""
    else:
        data = video_only(tmp_path / "audio", seconds=1.0).read_bytes()
    r = post_audio(a2t_server, data)
    assert r.status_code == 415
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == UNSUPPORTED


def _wav_of_exactly(size: int, seconds: float = 1.0) -> bytes:
    """A valid 16 kHz mono WAV of exactly `size` bytes: `seconds` of tone, then a RIFF `junk` chunk."""
    pcm = (np.sin(2 * np.pi * 440 * np.arange(int(16_000 * seconds)) / 16_000) * 12_000).astype("<i2").tobytes()
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 16_000, 32_000, 2, 16)
    data = struct.pack("<4sI", b"data", len(pcm)) + pcm
    head_len = 12 + len(fmt) + len(data) + 8
    junk = struct.pack("<4sI", b"junk", size - head_len) + b"\0" * (size - head_len)
    body = fmt + data + junk
    wav = struct.pack("<4sI4s", b"RIFF", 4 + len(body), b"WAVE") + body
    assert len(wav) == size
    return wav


def test_a2t_size_limit_is_exactly_50_mib(a2t_server, post_audio):
    exact = _wav_of_exactly(LIMIT)
    r = post_audio(a2t_server, exact, return_timestamps="false")
    assert r.status_code == 200, r.text  # 52,428,800 bytes are not rejected for size

    r = post_audio(a2t_server, exact + b"\0")
    assert r.status_code == 413
    assert r.json() == {"detail": {"msg": "File size exceeds limit."}}


@pytest.mark.parametrize("value", ["true", "TRUE", "sentence", "1", "segment", None])
def test_a2t_segment_timestamps(value, a2t_server, audio_files, post_audio):
    fields = {} if value is None else {"return_timestamps": value}
    r = post_audio(a2t_server, audio_files("flac", 4.0), **fields)
    assert r.status_code == 200, r.text
    chunks = r.json()["chunks"]
    assert chunks, "segment mode returns chunks"
    for chunk in chunks:
        assert set(chunk) == {"timestamp", "text"} and isinstance(chunk["text"], str)
        start, end = chunk["timestamp"]
        assert _is_number(start) and (end is None or (_is_number(end) and end >= start))


@pytest.mark.parametrize("value", ["false", "0", "False"])
def test_a2t_no_timestamps(value, a2t_server, audio_files, post_audio):
    r = post_audio(a2t_server, audio_files("flac", 4.0), return_timestamps=value)
    assert r.status_code == 200 and r.json()["chunks"] == []
    assert r.json()["text"]


def test_a2t_word_timestamps(a2t_server, audio_files, post_audio):
    r = post_audio(a2t_server, audio_files("ogg-vorbis", 4.0), return_timestamps="word")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["chunks"]
    for chunk in body["chunks"]:
        start, end = chunk["timestamp"]
        assert _is_number(start) and _is_number(end) and 0 <= start <= end <= 30
        assert isinstance(chunk["text"], str)
    # Words are cut from the text: together they are the text (up to spacing).
    assert "".join(c["text"] for c in body["chunks"]).replace(" ", "") == body["text"].replace(" ", "")
    # transformers switches Whisper to eager attention for word timestamps; we switch back.
    assert a2t_server.host.runner.transcriber.model.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("value", ["words", "yes", "char", "2"])
def test_a2t_other_timestamp_values_are_400(value, a2t_server, audio_files, post_audio):
    r = post_audio(a2t_server, audio_files("wav", 1.0), return_timestamps=value)
    assert r.status_code == 400 and "return_timestamps" in r.json()["detail"]["msg"]


def test_a2t_model_id(a2t_server, audio_files, post_audio):
    r = post_audio(a2t_server, audio_files("wav", 1.0), model_id="openai/whisper-medium")
    assert r.status_code == 400
    assert r.json()["detail"]["msg"] == ("pipeline configured with openai/whisper-large-v3 but called with "
                                         "openai/whisper-medium.")
    assert post_audio(a2t_server, audio_files("wav", 1.0), model_id="openai/whisper-large-v3").status_code == 200


@pytest.mark.parametrize("metadata", ['{"duration":42}', '{"duration":"42"}', "{}", '{"other":1}', "", "null"])
def test_a2t_metadata_accepted(metadata, a2t_server, audio_files, post_audio):
    r = post_audio(a2t_server, audio_files("wav", 1.0), metadata=metadata, return_timestamps="false")
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("metadata,msg", [
    ("{not json", "Invalid metadata: not valid JSON."),
    ("[1, 2]", "Invalid metadata: expected a JSON object."),
    ('{"duration":"long"}', "Unable to calculate duration of file"),
    ('{"duration":[3]}', "Unable to calculate duration of file"),
    ('{"duration":"nan"}', "Unable to calculate duration of file"),
    ('{"duration":1' + "0" * 400 + "}", "Unable to calculate duration of file"),  # too large for a float
    ('{"duration":' + "9" * 5000 + "}", "Invalid metadata: not valid JSON."),  # past int()'s digit limit
    ("[" * 100_000, "Invalid metadata: not valid JSON."),  # nesting past the JSON decoder's stack
])
def test_a2t_bad_metadata_is_400(metadata, msg, a2t_server, audio_files, post_audio):
    r = post_audio(a2t_server, audio_files("wav", 1.0), metadata=metadata)
    assert r.status_code == 400 and r.json() == {"detail": {"msg": msg}}


def test_a2t_word_timestamps_limit(a2t_server, audio_files, post_audio, monkeypatch):
    msg = ("Word timestamps are only supported for audio files up to 60 minutes for model "
           "openai/whisper-large-v3.")
    r = post_audio(a2t_server, audio_files("wav", 1.0), return_timestamps="word", metadata='{"duration":"3601"}')
    assert r.status_code == 400 and r.json()["detail"]["msg"] == msg
    # Segment timestamps have no such limit.
    r = post_audio(a2t_server, audio_files("wav", 1.0), metadata='{"duration":"3601"}')
    assert r.status_code == 200
    # Without metadata the decoded length decides (a 3 s file against a limit lowered to 2 s).
    monkeypatch.setattr(runner_module, "WORD_LIMIT_S", 2.0)
    r = post_audio(a2t_server, audio_files("wav", 3.0), return_timestamps="word")
    assert r.status_code == 400 and r.json()["detail"]["msg"] == msg


def test_a2t_longest_audio_is_enforced(a2t_server, audio_files, post_audio, monkeypatch):
    monkeypatch.setattr(a2t_server.host.runner, "max_audio_s", 3.0)
    r = post_audio(a2t_server, audio_files("webm-opus", 4.0))
    assert r.status_code == 400 and r.json()["detail"]["msg"] == "Audio longer than 3 s is not supported."


def test_a2t_over_30_s_goes_through_the_chunked_path(a2t_server, audio_files, post_audio, runner_stats):
    before = runner_stats(a2t_server)
    r = post_audio(a2t_server, audio_files("mp3", 65.0), metadata='{"duration":"65"}', return_timestamps="false")
    assert r.status_code == 200, r.text
    after = runner_stats(a2t_server)
    # Without timestamps (with them, Whisper's seek loop: see test_a2t_longform.py),
    # 65 s in 30 s windows overlapping by 5 s each side: windows at 0, 20 and 40 s, two batches of at most 2.
    assert after["chunked"] == before["chunked"] + 1
    assert after["windows"] - before["windows"] == 3
    assert after["batches"] - before["batches"] == 2


def test_a2t_chunking_follows_the_decoded_length_not_metadata(a2t_server, audio_files, post_audio, runner_stats):
    # Q12: go-livepeer truncates 30.9 s to "30"; upstream would then run the sequential path and lose 0.9 s.
    before = runner_stats(a2t_server)
    assert post_audio(a2t_server, audio_files("m4a-aac", 30.9), metadata='{"duration":"30"}').status_code == 200
    mid = runner_stats(a2t_server)
    assert mid["chunked"] == before["chunked"] + 1 and mid["windows"] - before["windows"] == 2
    assert post_audio(a2t_server, audio_files("m4a-aac", 29.5), metadata='{"duration":"45"}').status_code == 200
    after = runner_stats(a2t_server)
    assert after["sequential"] == mid["sequential"] + 1 and after["windows"] - mid["windows"] == 1


def test_a2t_missing_audio_part_is_422(a2t_server):
    r = httpx.post(a2t_server.url + "/audio-to-text", files={"other": ("x", b"abc", "application/octet-stream")},
                   data={"return_timestamps": "true"})
    assert r.status_code == 422
    assert json.loads(r.text)["detail"][0]["loc"] == ["body", "audio"]
