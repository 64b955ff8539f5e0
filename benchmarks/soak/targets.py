"""The runners the reliability suite and the soak benchmark drive: the SDK's fake runners and each reference
runner with its tiny synthetic model. One table, so the CI suite and the soak command cover the same set.

A target knows how to build its model (once), which runner class serves it, what a valid request looks
like, and which statuses its route may answer (contract 4.2). Real runners that do not import yet are
reported as unavailable rather than failing, so the suite grows as runners land.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from runner_sdk import routes
from runner_sdk.routes import Route

ROOT = Path(__file__).resolve().parents[2]

# Tiny request sizes so a CPU answers in a fraction of a second.
IMAGE_REQUEST = {"prompt": "a lighthouse at dusk", "width": 64, "height": 64, "seed": 7}
LLM_REQUEST = {"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 4}

# Runner-specific knobs for the tiny text-to-image model: a 64x64 warm-up and a pixel budget that keeps a
# fuzzed request from asking a CPU for a 2048x2048 image (both documented env vars of the runner).
T2I_ENV = {"T2I_WARMUP_SIZE": "64x64", "T2I_MAX_PIXELS": str(64 * 64 * 4)}
# A Whisper with random weights never predicts end-of-text, so every window decodes its whole token budget
# (444 tokens, ~5 s on a CPU); 8 tokens keep the same code path at a CI-friendly cost.
A2T_ENV = {"WHISPER_MAX_NEW_TOKENS": "8"}
# The same idea for the other runners: bounds on pixels, steps, tokens and text (each a documented env var),
# so a fuzzed request is answered in a fraction of a second or refused with a 400.
I2I_ENV = {**T2I_ENV, "T2I_MAX_STEPS": "4"}
UPSCALE_ENV = {"UPSCALE_MAX_INPUT_PIXELS": str(64 * 64), "UPSCALE_MAX_STEPS": "2", "UPSCALE_WARMUP_SIZE": "16"}
I2V_ENV = {"I2V_MAX_PIXELS": str(64 * 64), "I2V_MAX_INPUT_PIXELS": str(64 * 64), "I2V_MAX_STEPS": "2"}
I2T_ENV = {"BLIP_MAX_NEW_TOKENS": "4"}
# SAM2 works on 1024x1024 inputs: tens of MB of activations and multi-MB response strings per request. glibc
# raises its mmap threshold as they are freed, so they stay in the heap and RSS drifts by tens of MB between
# samples; a fixed threshold returns them to the system at once, which is what the leak check needs to see.
SAM2_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}
# VITS draws each answer's length, so every request has new tensor shapes, and on the CPU oneDNN caches a
# kernel per shape (bounded: 1024 by default). That bounded cache would read as growth in the load test's RSS
# check, which looks for leaks; off for this target.
TTS_ENV = {"TTS_MAX_CHARS": "200", "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "0"}


@dataclass
class Target:
    name: str
    pipeline: str
    model_id: str
    route: Route
    runner_spec: str  # module:Class, importable with the repo root and tests/ on sys.path
    real: bool
    env: dict[str, str] = field(default_factory=dict)
    warmup_rounds: int = 2  # load-test warm-up rounds before the RSS baseline

    @property
    def allowed(self) -> set[int]:
        return {200, *self.route.error_statuses}

    @property
    def served_spec(self) -> str:
        """The class `runner-sdk serve --runner` loads: real runners through the delay-able wrapper."""
        if not self.real:
            return self.runner_spec
        return "benchmarks.soak.wrapped:" + self.runner_spec.rpartition(":")[2]

    def runner_class(self):
        from runner_sdk.pipelines import load_object

        return load_object(self.runner_spec)

    def synthesize(self, model_dir: Path) -> Path | None:
        """Write the tiny model into `model_dir` (HF cache layout); fakes need none."""
        if not self.real:
            return None
        from runner_sdk.pipelines import synthesize

        return synthesize(self.pipeline, self.model_id, model_dir, "tiny")

    def valid_request(self) -> dict[str, Any]:
        """httpx keyword arguments of a request the runner must answer with 200."""
        if self.route not in (routes.TEXT_TO_IMAGE, routes.AUDIO_TO_TEXT, routes.LLM):
            from runner_sdk.worker_check import sample_request

            return sample_request(self.route, None)  # as go-livepeer sends it, for the table's other routes
        if self.route.multipart:
            return {"files": {"audio": ("audio", tone_file("wav"), "application/octet-stream")}}
        return {"json": dict(IMAGE_REQUEST if self.route is routes.TEXT_TO_IMAGE else LLM_REQUEST)}


TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("fake-image", "text-to-image", "ByteDance/SDXL-Lightning-4step", routes.TEXT_TO_IMAGE,
           "benchmarks.soak.wrapped:FakeImage", real=False),
    Target("fake-audio", "audio-to-text", "openai/whisper-large-v3", routes.AUDIO_TO_TEXT,
           "benchmarks.soak.wrapped:FakeAudio", real=False),
    Target("fake-llm", "llm", "meta-llama/Meta-Llama-3.1-8B-Instruct", routes.LLM,
           "benchmarks.soak.wrapped:FakeLLM", real=False),
    Target("text-to-image", "text-to-image", "ByteDance/SDXL-Lightning-4step", routes.TEXT_TO_IMAGE,
           "runners.text_to_image.runner:TextToImageRunner", real=True, env=T2I_ENV),
    Target("audio-to-text", "audio-to-text", "openai/whisper-large-v3", routes.AUDIO_TO_TEXT,
           "runners.audio_to_text.runner:AudioToTextRunner", real=True, env=A2T_ENV),
    Target("llm", "llm", "meta-llama/Meta-Llama-3.1-8B-Instruct", routes.LLM,
           "runners.llm.runner:LLMRunner", real=True),
    Target("image-to-image", "image-to-image", "ByteDance/SDXL-Lightning-4step", routes.IMAGE_TO_IMAGE,
           "runners.image_to_image.runner:ImageToImageRunner", real=True, env=I2I_ENV),
    Target("upscale", "upscale", "stabilityai/stable-diffusion-x4-upscaler", routes.UPSCALE,
           "runners.upscale.runner:UpscaleRunner", real=True, env=UPSCALE_ENV),
    Target("image-to-video", "image-to-video", "stabilityai/stable-video-diffusion-img2vid-xt",
           routes.IMAGE_TO_VIDEO, "runners.image_to_video.runner:ImageToVideoRunner", real=True, env=I2V_ENV),
    Target("image-to-text", "image-to-text", "Salesforce/blip-image-captioning-large", routes.IMAGE_TO_TEXT,
           "runners.image_to_text.runner:ImageToTextRunner", real=True, env=I2T_ENV),
    Target("segment-anything-2", "segment-anything-2", "facebook/sam2-hiera-large", routes.SEGMENT_ANYTHING_2,
           "runners.segment_anything_2.runner:SegmentAnything2Runner", real=True, warmup_rounds=12, env=SAM2_ENV),
    Target("text-to-speech", "text-to-speech", "facebook/mms-tts-eng", routes.TEXT_TO_SPEECH,
           "runners.text_to_speech.runner:TextToSpeechRunner", real=True, env=TTS_ENV),
]}


def unavailable(target: Target) -> str | None:
    """Why a target cannot run yet (its runner or synth module does not import), or None."""
    if not target.real:
        return None
    from runner_sdk.pipelines import PIPELINES, load_object

    try:
        target.runner_class()
        load_object(PIPELINES[target.pipeline].synth)
    except (ImportError, AttributeError) as exc:
        return f"{target.runner_spec} not available yet: {exc}"
    return None


# --- media ----------------------------------------------------------------------------------------

_CODECS = {"wav": ("wav", "pcm_s16le"), "mp3": ("mp3", "libmp3lame"), "flac": ("flac", "flac"),
           "m4a": ("mp4", "aac")}


def tone_file(fmt: str = "wav", seconds: float = 1.0, rate: int = 16_000) -> bytes:
    """A mono 440 Hz tone encoded with PyAV in `fmt` (wav, mp3, flac, m4a)."""
    import av

    container_fmt, codec = _CODECS[fmt]
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.4 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    buf = io.BytesIO()
    with av.open(buf, "w", format=container_fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        frame_size = stream.codec_context.frame_size or 1024
        in_fmt = "s16p" if codec != "pcm_s16le" else "s16"
        for start in range(0, len(samples), frame_size):
            chunk = samples[start:start + frame_size]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format=in_fmt, layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


# --- a served runner in its own process -------------------------------------------------------------


def free_port() -> int:
    from runner_sdk.testing import free_port as _free_port

    return _free_port()


class ServedProcess:
    """`runner-sdk serve` in a subprocess (its own RSS, real signals), with the target's class and env."""

    def __init__(self, target: Target, model_dir: Path, capacity: int, queue_size: int,
                 extra_env: dict[str, str] | None = None, log_path: Path | None = None):
        self.target = target
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # MALLOC_ARENA_MAX: glibc gives each new thread its own malloc arena (up to 8 per core), so RSS steps up
        # whenever the thread pools grow; two arenas keep the RSS figure about requests, not thread counts.
        self.env = {"MALLOC_ARENA_MAX": "2", **os.environ, **target.env, **(extra_env or {}),
                    "PIPELINE": target.pipeline, "MODEL_ID": target.model_id, "MODEL_DIR": str(model_dir),
                    "RUNNER_CLASS": target.served_spec, "HF_HUB_OFFLINE": "1",
                    "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
        self.args = [sys.executable, "-m", "runner_sdk", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                     "--device", "cpu", "--capacity", str(capacity), "--queue-size", str(queue_size)]
        self._log_dir = None
        if log_path is None:
            self._log_dir = tempfile.mkdtemp(prefix="served-")
            log_path = Path(self._log_dir) / "serve.log"
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, ready_timeout: float = 180.0) -> ServedProcess:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.args, env=self.env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + ready_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"runner exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                status = httpx.get(self.url + "/health", timeout=2).json()["status"]
                if status in {"IDLE", "OK"}:
                    return self
                if status == "ERROR":
                    raise RuntimeError(f"runner failed to load:\n{self.log()[-3000:]}")
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"runner not ready in {ready_timeout} s:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def log(self) -> str:
        return Path(self.log_path).read_bytes().decode("utf-8", "replace")

    def rss(self) -> int:
        return process_rss(self.proc.pid)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if getattr(self, "_log", None) is not None:
            self._log.close()
        if self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)

    def __enter__(self) -> ServedProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def process_rss(pid: int) -> int:
    """Resident set size in bytes (psutil when installed, else /proc/<pid>/statm)."""
    try:
        import psutil
    except ImportError:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    return psutil.Process(pid).memory_info().rss
