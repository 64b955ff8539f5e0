"""What a benchmark sends to each pipeline, and how many pricing units a response is worth.

Pricing units are what an orchestrator charges for (the pipeline table's `pricing_unit`): output pixels
(text-to-image), audio milliseconds (audio-to-text), generated tokens (llm).
"""

from __future__ import annotations

import io
import math
import struct
import wave
from dataclasses import dataclass
from typing import Any

from ..pipelines import PIPELINES


@dataclass
class Workload:
    """The requests of one pipeline's benchmark; its path and pricing unit come from the pipeline table."""

    pipeline: str

    @property
    def unit(self) -> str:
        """The pricing unit `units` counts in."""
        return PIPELINES[self.pipeline].pricing_unit

    @property
    def path(self) -> str:
        """The runner's POST path."""
        return PIPELINES[self.pipeline].path

    def request(self, i: int) -> dict[str, Any]:
        """httpx keyword arguments of request number `i`."""
        raise NotImplementedError

    def units(self, body: dict[str, Any]) -> float:
        """How many pricing units a 200 response body is worth."""
        raise NotImplementedError


@dataclass
class TextToImage(Workload):
    width: int = 1024
    height: int = 1024

    def request(self, i: int) -> dict[str, Any]:
        return {"json": {"prompt": f"a lighthouse on a cliff at dusk, photo {i}", "width": self.width,
                         "height": self.height, "seed": i}}

    def units(self, body: dict[str, Any]) -> float:
        return float(self.width * self.height * len(body["images"]))


def synthetic_wav(seconds: float, rate: int = 16000) -> bytes:
    """A speech-band chirp with a little noise, as a 16-bit mono WAV (stdlib only)."""
    n = int(seconds * rate)
    frames = bytearray()
    for t in range(n):
        x = 0.3 * math.sin(2 * math.pi * (200 + 300 * ((t / rate) % 1.0)) * t / rate)
        x += 0.02 * (((t * 1103515245 + 12345) >> 16) % 2000 / 1000 - 1)
        frames += struct.pack("<h", int(max(-1, min(1, x)) * 32767))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return buf.getvalue()


@dataclass
class AudioToText(Workload):
    seconds: float = 60.0
    _audio: bytes = b""

    def request(self, i: int) -> dict[str, Any]:
        if not self._audio:
            self._audio = synthetic_wav(self.seconds)
        return {"files": {"audio": ("audio", self._audio, "application/octet-stream")},
                "data": {"metadata": f'{{"duration":"{int(self.seconds)}"}}', "return_timestamps": "true"}}

    def units(self, body: dict[str, Any]) -> float:
        return self.seconds * 1000.0


@dataclass
class LLM(Workload):
    max_tokens: int = 256

    def request(self, i: int) -> dict[str, Any]:
        return {"json": {"messages": [{"role": "user", "content": f"Write a short story about lighthouse {i}."}],
                         "max_tokens": self.max_tokens, "temperature": 0.7}}

    def units(self, body: dict[str, Any]) -> float:
        return float(body["usage"]["completion_tokens"])


def workload(pipeline: str, scale: str) -> Workload:
    """The benchmark requests for `pipeline`: small ones at scale "tiny", production-sized ones otherwise.

    Raises:
        ValueError: no workload for this pipeline.
    """
    tiny = scale == "tiny"
    if pipeline == "text-to-image":
        side = 64 if tiny else 1024
        return TextToImage(pipeline, width=side, height=side)
    if pipeline == "audio-to-text":
        return AudioToText(pipeline, seconds=5.0 if tiny else 600.0)
    if pipeline == "llm":
        return LLM(pipeline, max_tokens=16 if tiny else 256)
    raise ValueError(f"no benchmark workload for pipeline {pipeline!r}")
