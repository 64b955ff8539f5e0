"""Real audio files for tests and benchmarks, encoded with PyAV from a generated waveform.

Every format the runner must accept, each with the encoder FFmpeg ships here (PyAV's wheels have
libmp3lame and libopus; Vorbis uses FFmpeg's native encoder, AAC FFmpeg's native one).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


@dataclass(frozen=True)
class AudioFormat:
    name: str
    container: str  # FFmpeg muxer
    codec: str
    rate: int  # the encoder's sample rate (resampled to 16 kHz on decode)
    sample_fmt: str
    layout: str = "mono"
    options: tuple[tuple[str, str], ...] = ()
    with_video: bool = False  # an mp4 carrying a video track as well


FORMATS: dict[str, AudioFormat] = {f.name: f for f in (
    AudioFormat("wav", "wav", "pcm_s16le", 44_100, "s16"),
    AudioFormat("flac", "flac", "flac", 48_000, "s16", layout="stereo"),
    AudioFormat("mp3", "mp3", "libmp3lame", 44_100, "fltp", layout="stereo"),
    AudioFormat("ogg-vorbis", "ogg", "vorbis", 44_100, "fltp", layout="stereo", options=(("strict", "experimental"),)),
    AudioFormat("webm-opus", "webm", "libopus", 48_000, "flt"),
    AudioFormat("m4a-aac", "ipod", "aac", 44_100, "fltp"),
    AudioFormat("mp4-aac-video", "mp4", "aac", 48_000, "fltp", layout="stereo", with_video=True),
)}


def tone(seconds: float, rate: int = 16_000, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    """A sine with a slow amplitude wobble, so that any missing or shifted piece changes the signal."""
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * (0.75 + 0.25 * np.sin(2 * np.pi * 0.7 * t)) * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def encode(wave: np.ndarray, rate: int, fmt: AudioFormat | str, path: str | Path) -> Path:
    """Encode mono float32 `wave` sampled at `rate` into `path` with `fmt` (resampled to fmt.rate)."""
    fmt = FORMATS[fmt] if isinstance(fmt, str) else fmt
    path = Path(path)
    with av.open(str(path), mode="w", format=fmt.container) as out:
        stream = out.add_stream(fmt.codec, rate=fmt.rate, options=dict(fmt.options))
        stream.layout = fmt.layout
        stream.format = fmt.sample_fmt
        video = None
        if fmt.with_video:
            video = out.add_stream("mpeg4", rate=10)
            video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        # Feed through a resampler with a FIFO, in the encoder's frame size (AAC/Opus/Vorbis need fixed sizes).
        frame_size = stream.codec_context.frame_size or 1024
        resampler = av.AudioResampler(format=fmt.sample_fmt, layout=fmt.layout, rate=fmt.rate,
                                      frame_size=frame_size)
        block = 4096
        for start in range(0, len(wave), block):
            piece = np.ascontiguousarray(wave[start:start + block], dtype=np.float32).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(piece, format="flt", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for rf in resampler.resample(frame):
                out.mux(stream.encode(rf))
        for rf in resampler.resample(None):  # the resampler's buffered tail
            out.mux(stream.encode(rf))
        out.mux(stream.encode(None))
        if video is not None:
            n = max(1, int(len(wave) / rate * 10))
            for i in range(n):
                img = np.full((48, 64, 3), (i * 7) % 255, dtype=np.uint8)
                vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                vf.pts = i
                out.mux(video.encode(vf))
            out.mux(video.encode(None))
    return path


def video_only(path: str | Path, seconds: float = 1.0) -> Path:
    """An mp4 with a video track and no audio."""
    path = Path(path)
    with av.open(str(path), mode="w", format="mp4") as out:
        video = out.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        for i in range(max(1, int(seconds * 10))):
            vf = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 9 % 255, dtype=np.uint8), format="rgb24")
            vf.pts = i
            out.mux(video.encode(vf))
        out.mux(video.encode(None))
    return path
