"""Text in, WAV out: sentence splitting for long text, and the 16-bit PCM WAV data URL go-livepeer stores
(contract 3.13, 6.3). No model library here, so both environments (the main one and Parler-TTS's) share it."""

from __future__ import annotations

import base64
import io
import re
import wave

import numpy as np

_SENTENCE_END = re.compile(r"(?<=[.!?;:。！？])\s+|\n+")
_SOFT_BREAK = re.compile(r"(?<=[,;:])\s+|\s+")


def split_sentences(text: str, max_chars: int = 200) -> list[str]:
    """Sentences of `text`, each at most `max_chars` long (longer ones split at commas, then at spaces,
    then hard), empty pieces dropped.

    Args:
        text: the request's text. max_chars: the longest piece the model gets in one sequence.
    Returns:
        The pieces in order; their concatenation, spaces aside, is the text.
    """
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        sentence = sentence.strip()
        while len(sentence) > max_chars:
            cut = max((m.start() for m in _SOFT_BREAK.finditer(sentence, 0, max_chars + 1)), default=0)
            cut = cut if cut > 0 else max_chars
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            pieces.append(sentence)
    return [p for p in pieces if p]


def join_audio(parts: list[np.ndarray], sampling_rate: int, pause_s: float = 0.12) -> np.ndarray:
    """The pieces' audio in order, with `pause_s` of silence between sentences.

    Args:
        parts: mono float arrays. sampling_rate: their rate. pause_s: silence between pieces.
    Returns:
        One float32 array.
    """
    gap = np.zeros(int(sampling_rate * pause_s), dtype=np.float32)
    out: list[np.ndarray] = []
    for i, part in enumerate(parts):
        if i:
            out.append(gap)
        out.append(np.asarray(part, dtype=np.float32).reshape(-1))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def wav_bytes(samples: np.ndarray, sampling_rate: int) -> bytes:
    """A mono 16-bit PCM WAV at `sampling_rate` (the model's own rate, Q42); samples clipped to [-1, 1].

    Args:
        samples: mono float audio. sampling_rate: samples per second, written in the header.
    Returns:
        The RIFF/WAVE file's bytes.
    """
    pcm = (np.clip(np.nan_to_num(samples), -1.0, 1.0) * 32767.0).round().astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sampling_rate))
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def wav_data_url(samples: np.ndarray, sampling_rate: int) -> str:
    """`data:audio/wav;base64,...` of `wav_bytes(samples, sampling_rate)`: the only form go-livepeer reads."""
    return "data:audio/wav;base64," + base64.b64encode(wav_bytes(samples, sampling_rate)).decode("ascii")
