"""PyAV decoding of real files encoded in the test: every format, exact durations, the upstream quirks."""

from __future__ import annotations

import dataclasses

import av
import numpy as np
import pytest

from runners.audio_to_text.decode import SAMPLE_RATE, AudioTooLong, UnsupportedAudio, decode_audio
from runners.audio_to_text.testaudio import FORMATS, encode, tone, video_only

SECONDS = 3.7


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    return float(np.corrcoef(a[:n], b[:n])[0, 1])


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_a2t_each_format_decodes_to_the_expected_duration(fmt, tmp_path):
    wave = tone(SECONDS)
    path = encode(wave, SAMPLE_RATE, fmt, tmp_path / "audio")  # no extension, as go-livepeer names it
    decoded = decode_audio(path)
    assert decoded.samples.dtype == np.float32 and decoded.samples.ndim == 1
    assert abs(decoded.duration_s - SECONDS) <= 0.010, (fmt, decoded.duration_s)
    # The right audio, in place: lossy codecs keep a 440 Hz tone almost exactly, from the very first 10 ms.
    assert _corr(wave, decoded.samples) > 0.99
    assert _corr(wave[:160], decoded.samples[:160]) > 0.95


def test_a2t_mp3_first_frame_is_kept(tmp_path):
    """LAME's encoder delay leaves a 47-sample first frame, for which the resampler yields nothing (the stock
    runner indexes [0] and answers 415, Q9). The samples must survive, at time zero."""
    wave = tone(2.0)
    wave[:800] = np.sin(2 * np.pi * 1000 * np.arange(800) / SAMPLE_RATE)  # a loud 50 ms burst at the start
    path = encode(wave, SAMPLE_RATE, "mp3", tmp_path / "audio")

    with av.open(str(path)) as container:
        first = next(container.decode(audio=0))
        plain = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        assert first.samples < 100 and plain.resample(first) == []  # the condition behind Q9 is present

    decoded = decode_audio(path)
    assert abs(decoded.duration_s - 2.0) <= 0.010
    assert _corr(wave[:320], decoded.samples[:320]) > 0.95
    assert np.sqrt(np.mean(decoded.samples[:160] ** 2)) > 0.5  # the burst is there from the first sample


def test_a2t_resampler_tail_is_flushed(tmp_path):
    """Q10: without the flush, the resampler's buffered tail (a few ms) is lost."""
    wave = tone(1.0, rate=44_100)
    path = encode(wave, 44_100, "wav", tmp_path / "audio")
    decoded = decode_audio(path)
    assert len(decoded.samples) == SAMPLE_RATE  # exactly 1 s at 16 kHz, nothing dropped at the end


def test_a2t_filename_never_decides_the_format(tmp_path):
    path = encode(tone(1.0), SAMPLE_RATE, "flac", tmp_path / "lying.mp3")
    decoded = decode_audio(path)
    assert decoded.container == "flac" and abs(decoded.duration_s - 1.0) <= 0.010


def test_a2t_only_the_first_audio_stream_is_decoded(tmp_path):
    """Q11: a file with two audio tracks is not transcribed twice."""
    path = tmp_path / "two-tracks"
    first, second = tone(1.5, freq=440), tone(1.5, freq=700)
    with av.open(str(path), mode="w", format="matroska") as out:
        streams = [out.add_stream("flac", rate=SAMPLE_RATE) for _ in range(2)]
        for stream in streams:
            stream.layout, stream.format = "mono", "s16"
        for stream, wave in zip(streams, (first, second), strict=True):
            pcm = (wave * 32767).astype(np.int16).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            frame.pts = 0
            out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
    decoded = decode_audio(path)
    assert abs(decoded.duration_s - 1.5) <= 0.010
    assert _corr(first, decoded.samples) > 0.99


def test_a2t_sample_rate_change_midstream(tmp_path):
    """Two MP3s of different rates back to back: a plain AudioResampler refuses the second rate."""
    a = encode(tone(1.0), SAMPLE_RATE, "mp3", tmp_path / "a").read_bytes()
    mono48k = dataclasses.replace(FORMATS["mp3"], rate=48_000, layout="mono")
    b = encode(tone(1.0, freq=300), SAMPLE_RATE, mono48k, tmp_path / "b").read_bytes()
    path = tmp_path / "audio"
    path.write_bytes(a + b)
    decoded = decode_audio(path)
    assert 2.0 <= decoded.duration_s < 2.1  # both halves (the second's delay is not trimmed mid-file)


def test_a2t_truncated_upload_keeps_what_decodes(tmp_path):
    data = encode(tone(4.0), SAMPLE_RATE, "mp3", tmp_path / "full").read_bytes()
    path = tmp_path / "audio"
    path.write_bytes(data[: len(data) // 2])
    decoded = decode_audio(path)
    assert 1.5 < decoded.duration_s < 2.5


def test_a2t_tiny_mp3_the_prober_rejects_is_still_decoded(tmp_path):
    """Under ~0.2 s an MP3 has too few frames for FFmpeg's prober; the ID3/frame-sync bytes say mp3."""
    path = encode(tone(0.1), SAMPLE_RATE, "mp3", tmp_path / "audio")
    with pytest.raises(av.FFmpegError):
        av.open(str(path)).close()
    decoded = decode_audio(path)
    assert abs(decoded.duration_s - 0.1) <= 0.010


@pytest.mark.parametrize("content", [
    b"",
    b"this is not audio at all, just text\n" * 50,
    np.random.default_rng(0).integers(0, 256, 64 * 1024, dtype=np.uint8).tobytes(),
    b"RIFF\x24\x00\x00\x00WAVEfmt ",  # a WAV header cut short
], ids=["empty", "text", "random", "truncated-header"])
def test_a2t_not_audio_is_unsupported(content, tmp_path):
    path = tmp_path / "audio"
    path.write_bytes(content)
    with pytest.raises(UnsupportedAudio):
        decode_audio(path)


def test_a2t_video_only_is_unsupported(tmp_path):
    path = video_only(tmp_path / "audio")
    with pytest.raises(UnsupportedAudio, match="no audio stream"):
        decode_audio(path)


def test_a2t_decoding_stops_at_max_seconds(tmp_path):
    path = encode(tone(5.0), SAMPLE_RATE, "webm-opus", tmp_path / "audio")
    with pytest.raises(AudioTooLong):
        decode_audio(path, max_seconds=2.0)
    assert abs(decode_audio(path, max_seconds=6.0).duration_s - 5.0) <= 0.010


@pytest.mark.parametrize("seed", range(6))
def test_a2t_random_bytes_are_never_audio(seed, tmp_path):
    """Random bytes may start with something like an MPEG frame header; noise must still be a 415."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, 100_000, dtype=np.uint8).tobytes()
    path = tmp_path / "audio"
    for head in (b"", b"\xff\xe4\x90", b"ID3\x04"):  # as is, behind an MPEG frame sync, behind an ID3 tag
        path.write_bytes(head + data)
        with pytest.raises(UnsupportedAudio):
            decode_audio(path)


def _float_wav(samples: np.ndarray, rate: int, path) -> None:
    """An IEEE-float WAV (format 3), written by hand: it can carry NaN and Inf, as a careless encoder's can."""
    import struct

    data = samples.astype("<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE"
                     + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data)


def test_a2t_non_finite_samples_never_reach_the_model(tmp_path):
    wave = tone(1.0)
    wave[100:200], wave[300], wave[400] = np.nan, np.inf, -3e38
    _float_wav(wave, SAMPLE_RATE, tmp_path / "audio")
    samples = decode_audio(tmp_path / "audio").samples
    assert np.isfinite(samples).all() and np.abs(samples).max() <= 1.0
    assert len(samples) == len(wave)


def test_a2t_tiny_low_rate_file_is_refused_before_it_expands(tmp_path):
    """A few KB at 1 Hz would resample to hours of 16 kHz audio (gigabytes): refused as not speech."""
    _float_wav(np.zeros(4000, dtype=np.float32), 1, tmp_path / "audio")
    with pytest.raises(UnsupportedAudio, match="sample rate 1 Hz"):
        decode_audio(tmp_path / "audio", max_seconds=14_400)


def _one_packet_mkv(samples: np.ndarray, rate: int, path) -> None:
    """PCM in Matroska as a single packet: the decoder hands it over as one frame."""
    from fractions import Fraction

    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray((samples * 20000).astype(np.int16)[None], format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)


def test_a2t_duration_limit_is_checked_before_a_frame_is_resampled(tmp_path, monkeypatch):
    """One frame worth 20 s against a 2 s budget: refused before the resampler allocates its output."""
    from runners.audio_to_text import decode

    _one_packet_mkv(tone(20.0, rate=8000), 8000, tmp_path / "audio")
    pushed: list[int] = []
    real_push = decode._Resampler.push
    monkeypatch.setattr(decode._Resampler, "push", lambda self, frame: pushed.append(frame.samples) or real_push(self, frame))
    with pytest.raises(AudioTooLong):
        decode_audio(tmp_path / "audio", max_seconds=2)
    assert pushed == []
    assert abs(decode_audio(tmp_path / "audio").duration_s - 20.0) <= 0.010  # without the limit it decodes


def test_a2t_an_empty_first_track_falls_through_to_the_one_with_audio(tmp_path):
    from fractions import Fraction

    path = tmp_path / "audio"
    with av.open(str(path), "w", format="matroska") as out:
        streams = [out.add_stream("pcm_s16le", rate=SAMPLE_RATE, layout="mono") for _ in range(2)]
        pcm = (tone(1.0) * 20000).astype(np.int16)
        for i in range(0, len(pcm), 1024):
            frame = av.AudioFrame.from_ndarray(pcm[None, i:i + 1024], format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, i, Fraction(1, SAMPLE_RATE)
            for packet in streams[1].encode(frame):
                out.mux(packet)
        for packet in streams[1].encode(None):
            out.mux(packet)
    decoded = decode_audio(path)
    assert abs(decoded.duration_s - 1.0) <= 0.010


def test_a2t_decoding_stops_when_its_job_is_cancelled(tmp_path):
    path = encode(tone(60.0), SAMPLE_RATE, "mp3", tmp_path / "audio")
    calls = []

    def cancelled() -> None:
        calls.append(1)
        raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        decode_audio(path, check_cancelled=cancelled)
    assert calls == [1]  # the first check stops it
