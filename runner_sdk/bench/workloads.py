"""What a benchmark sends to each pipeline, and how many pricing units a response is worth.

Pricing units are what an orchestrator charges for (the pipeline table's `pricing_unit`): output pixels
(text-to-image), audio milliseconds (audio-to-text), generated tokens (llm), input pixels (image-to-text,
segment-anything-2), 1000 x the text's code points (text-to-speech), input pixels x images (image-to-image),
input pixels (upscale), height x width x 25 (image-to-video).
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


def sample_png(width: int, height: int) -> bytes:
    """A PNG photo stand-in: a gradient with a square (Pillow, which every image runner already needs)."""
    from PIL import Image, ImageDraw

    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    ImageDraw.Draw(image).rectangle((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=(200, 60, 30))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class ImageToText(Workload):
    """A captioning request per image, with a prompt on every other one (BLIP continues it)."""

    side: int = 512
    _image: bytes = b""

    def request(self, i: int) -> dict[str, Any]:
        if not self._image:
            self._image = sample_png(self.side, self.side)
        data = {"prompt": "a photo of"} if i % 2 else {}
        return {"files": {"image": ("image", self._image, "application/octet-stream")}, "data": data}

    def units(self, body: dict[str, Any]) -> float:
        return float(self.side * self.side)


@dataclass
class SegmentAnything2(Workload):
    """One point prompt per request, at a different place each time (logits and masks returned)."""

    width: int = 1024
    height: int = 768
    _image: bytes = b""

    def request(self, i: int) -> dict[str, Any]:
        if not self._image:
            self._image = sample_png(self.width, self.height)
        x, y = (37 * i) % self.width, (53 * i) % self.height
        return {"files": {"image": ("image", self._image, "application/octet-stream")},
                "data": {"point_coords": f"[[{x},{y}]]", "point_labels": "[1]"}}

    def units(self, body: dict[str, Any]) -> float:
        return float(self.width * self.height)


@dataclass
class TextToSpeech(Workload):
    """A paragraph of `sentences` sentences per request, every request the same length."""

    sentences: int = 4

    def text(self, i: int) -> str:
        return " ".join(f"Sentence {k} of request {i % 1_000_000:06d} is read aloud at a moderate pace."
                        for k in range(self.sentences))

    def request(self, i: int) -> dict[str, Any]:
        return {"json": {"text": self.text(i)}}

    def units(self, body: dict[str, Any]) -> float:
        # Billed by the request, not the answer: 1000 x the text's code points (the same for every request).
        return 1000.0 * len(self.text(0))



@dataclass
class ImageToImage(Workload):
    """An image-to-image request per input (go-livepeer's field spelling); billed by input pixels x images."""

    side: int = 1024
    steps: int = 0  # 0: the route's default (forced anyway for Lightning)
    _image: bytes = b""

    def request(self, i: int) -> dict[str, Any]:
        if not self._image:
            self._image = sample_png(self.side, self.side)
        data = {"prompt": f"a watercolour painting, variation {i}", "strength": "0.800000", "seed": str(i)}
        if self.steps:
            data["num_inference_steps"] = str(self.steps)
        return {"files": {"image": ("image", self._image, "application/octet-stream")}, "data": data}

    def units(self, body: dict[str, Any]) -> float:
        return float(self.side * self.side * len(body["images"]))


@dataclass
class Upscale(Workload):
    """A 4x upscale of a `side` square (`steps` denoising steps); billed by input pixels."""

    side: int = 256
    steps: int = 25
    _image: bytes = b""

    def request(self, i: int) -> dict[str, Any]:
        if not self._image:
            self._image = sample_png(self.side, self.side)
        return {"files": {"image": ("image", self._image, "application/octet-stream")},
                "data": {"prompt": "a sharp photo", "seed": str(i), "num_inference_steps": str(self.steps)}}

    def units(self, body: dict[str, Any]) -> float:
        return float(self.side * self.side)


@dataclass
class ImageToVideo(Workload):
    """An SVD video of `width` x `height` frames; billed as height x width x 25 whatever the frame count."""

    width: int = 1024
    height: int = 576
    steps: int = 25
    _image: bytes = b""

    def request(self, i: int) -> dict[str, Any]:
        if not self._image:
            self._image = sample_png(self.width, self.height)
        return {"files": {"image": ("image", self._image, "application/octet-stream")},
                "data": {"width": str(self.width), "height": str(self.height), "seed": str(i),
                         "num_inference_steps": str(self.steps)}}

    def units(self, body: dict[str, Any]) -> float:
        return float(self.width * self.height * 25)

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
    if pipeline == "image-to-text":
        return ImageToText(pipeline, side=64 if tiny else 512)
    if pipeline == "segment-anything-2":
        return SegmentAnything2(pipeline, width=48 if tiny else 1024, height=32 if tiny else 768)
    if pipeline == "text-to-speech":
        return TextToSpeech(pipeline, sentences=1 if tiny else 4)
    if pipeline == "image-to-image":
        return ImageToImage(pipeline, side=64 if tiny else 1024, steps=2 if tiny else 0)
    if pipeline == "upscale":
        return Upscale(pipeline, side=16 if tiny else 256, steps=2 if tiny else 25)
    if pipeline == "image-to-video":
        return ImageToVideo(pipeline, width=32 if tiny else 1024, height=32 if tiny else 576, steps=2 if tiny else 25)
    raise ValueError(f"no benchmark workload for pipeline {pipeline!r}")
