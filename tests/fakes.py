"""Small runners that exercise the SDK without a model library: real threads, real sleeps, real PNGs."""

from __future__ import annotations

import base64
import io
import struct
import threading
import time
import zlib

from runner_sdk import BadRequest, Job, LoadContext, Runner, RunnerError, routes, schemas


def tiny_png(width: int, height: int, seed: int) -> bytes:
    """A solid-colour PNG without Pillow (the SDK core does not depend on it)."""
    colour = bytes([(seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256])
    raw = b"".join(b"\x00" + colour * width for _ in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


class FakeImageRunner(Runner):
    """Serves /text-to-image: `steps` steps of `step_s` seconds each, checking for cancellation."""

    route = routes.TEXT_TO_IMAGE

    @classmethod
    def download_plan(cls, model_id: str) -> list:
        return []  # reads no weights: nothing for the start-up check to find in MODEL_DIR
    oom_message = "Out of memory error. Try reducing output image resolution."
    error_message = "Text-to-image pipeline error."
    load_s = 0.0
    fail_load: str | None = None
    step_s = 0.0
    steps = 1
    started = None  # threading.Event set when a predict starts (tests wait on it)
    steps_run: list[int] = []
    inject: str | None = None  # "oom" | "crash" | "runner-error"

    def setup(self, ctx: LoadContext) -> None:
        with ctx.phase("read_weights"):
            time.sleep(self.load_s)
        if self.fail_load:
            raise RuntimeError(self.fail_load)
        ctx.report(dtype="float32")
        type(self).steps_run = []

    def decode(self, request: schemas.TextToImageParams) -> schemas.TextToImageParams:
        if not request.prompt.strip():
            raise BadRequest("Prompt must be provided.")
        if request.height % 8 or request.width % 8:
            raise BadRequest(f"`height` and `width` have to be divisible by 8 but are {request.height} and "
                             f"{request.width}.")
        return request

    def predict(self, request: schemas.TextToImageParams, job: Job) -> schemas.ImageResponse:
        if self.started is not None:
            self.started.set()
        done = 0
        try:
            with job.stage("denoise"):
                for _ in range(self.steps):
                    job.step()
                    time.sleep(self.step_s)
                    done += 1
        finally:
            type(self).steps_run.append(done)
        if self.inject == "oom":
            raise _OutOfMemory("CUDA out of memory. Tried to allocate 20.00 GiB")
        if self.inject == "crash":
            raise KeyError("boom")
        if self.inject == "runner-error":
            raise RunnerError(400, "Error during model execution: bad.")
        seed = request.seed if request.seed is not None else 1
        images = []
        with job.stage("encode"):
            for i in range(request.num_images_per_prompt):
                png = tiny_png(request.width, request.height, seed + i)
                images.append(schemas.Media(url="data:image/png;base64," + base64.b64encode(png).decode(),
                                            seed=seed + i, nsfw=False))
        return schemas.ImageResponse(images=images)


class _OutOfMemory(RuntimeError):
    pass


_OutOfMemory.__name__ = "OutOfMemoryError"


def runner(**attrs) -> type[FakeImageRunner]:
    """A FakeImageRunner subclass with the given class attributes (each test gets its own)."""
    attrs.setdefault("started", threading.Event())
    return type("TestRunner", (FakeImageRunner,), attrs)


def decode_png(url: str) -> bytes:
    assert url.startswith("data:image/png;base64,")
    return base64.b64decode(url.split(",", 1)[1])


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", png[16:24])


__all__ = ["FakeImageRunner", "runner", "decode_png", "png_size", "io"]


class FakeAudioRunner(Runner):
    """Serves /audio-to-text: echoes the upload's size and first bytes (exercises the SDK's multipart path)."""

    route = routes.AUDIO_TO_TEXT

    @classmethod
    def download_plan(cls, model_id: str) -> list:
        return []  # reads no weights: nothing for the start-up check to find in MODEL_DIR

    def predict(self, request: schemas.AudioToTextForm, job: Job) -> schemas.TextResponse:
        upload = request.audio
        type(self).last_upload = upload.path
        head = upload.path.read_bytes()[:4]
        return schemas.TextResponse(text=f"{upload.size}:{head.hex()}:{request.return_timestamps}", chunks=[])


class FakeLLMRunner(Runner):
    """Serves /llm: streams one word per step; `fail_at` raises mid-stream, `fail_before` before the first."""

    route = routes.LLM

    @classmethod
    def download_plan(cls, model_id: str) -> list:
        return []  # reads no weights: nothing for the start-up check to find in MODEL_DIR
    words = ["Hello", " there", ",", " friend", "."]
    step_s = 0.0
    fail_at: int | None = None
    fail_before = False
    produced: list[int] = []

    def setup(self, ctx: LoadContext) -> None:
        type(self).produced = []

    def decode(self, request: schemas.LLMRequest) -> schemas.LLMRequest:
        if not request.messages:
            raise BadRequest("messages must not be empty")
        return request

    def _chunk(self, n: int, content: str, finish: str) -> schemas.LLMResponse:
        return schemas.LLMResponse(
            id="chatcmpl-test", model=self.settings.model_id, created=int(time.time()),
            usage=schemas.LLMTokenUsage(prompt_tokens=3, completion_tokens=n, total_tokens=3 + n),
            choices=[schemas.LLMChoice(index=0, finish_reason=finish,
                                       delta=schemas.LLMMessage(role="assistant", content=content))])

    def predict(self, request: schemas.LLMRequest, job: Job):
        if self.fail_before:
            raise RunnerError(500, "engine failed before the first token")

        def stream():
            n = 0
            try:
                for n, word in enumerate(self.words[: request.max_tokens], start=1):
                    job.step()
                    if self.fail_at == n:
                        raise RuntimeError("engine died")
                    time.sleep(self.step_s)
                    yield self._chunk(n, word, "")
                yield self._chunk(n, "", "length" if request.max_tokens <= len(self.words) else "stop")
            finally:
                type(self).produced.append(n)

        return stream()

    def stream_error_chunk(self, request, exc):
        return self._chunk(0, "", "error")


class SlowImageRunner(FakeImageRunner):
    """About one second per request: long enough to SIGTERM the server mid-request."""

    steps = 50
    step_s = 0.02


class StuckImageRunner(FakeImageRunner):
    """Twenty seconds per request: still running when a SIGTERM's graceful-shutdown window ends."""

    steps = 1000
    step_s = 0.02
