"""Audio-to-text reference runner: Whisper (large-v3 and other checkpoints) through transformers.

The whole request: the SDK checks model_id, then `decode` the other text parts in the contract's order
(return_timestamps, metadata);
the upload decoded from its bytes with PyAV (decode.py); chunked, batched transcription (transcribe.py);
text and [start, end] chunks back.

Configuration (env vars, on top of the SDK's):
- BACKEND: `transformers` (default) or `faster-whisper` (CTranslate2, the `faster-whisper` extra).
- WHISPER_MAX_NEW_TOKENS: tokens per 30 s window; default 444, Whisper's whole decoder budget of 448
  positions minus the prompt (Q14; the stock runner stops at 128).
- WHISPER_BATCH_SIZE: most windows per batch (default 24 on CUDA, 8 on the CPU); on CUDA the free memory
  may lower it per request.
- WHISPER_MAX_AUDIO_S: longest decoded audio accepted, 400 beyond (default 14400 s). A 50 MiB upload of
  low-bitrate Opus holds about 19 hours, which would need 4.4 GB as float32 samples.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from runner_sdk import (
    BadRequest,
    Job,
    JobCancelled,
    LoadContext,
    Runner,
    RunnerError,
    RunnerOptions,
    UploadedFile,
    routes,
    schemas,
)
from runner_sdk.integrity import NonFiniteOutput, integrity_of
from runner_sdk.resolve import resolve_snapshot

from .bounds import bound_chunks
from .decode import UNSUPPORTED_MESSAGE, AudioTooLong, DecodedAudio, UnsupportedAudio, decode_audio
from .options import (
    WORD_LIMIT_S,
    Timestamps,
    parse_metadata_duration,
    parse_return_timestamps,
    word_limit_message,
)

log = logging.getLogger(__name__)

# Files a Whisper repo needs here (no .bin, .msgpack or .h5 duplicates of the weights).
ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt"]
# ai-runner runs these in fp32 on CUDA (contract 8.2); everything else in fp16 (bf16 with BFLOAT16).
FP32_MODELS = {"openai/whisper-medium"}


def chunk_length_for(model_id: str) -> float:
    """distil-large-v3 is trained on 25 s windows (contract 8.2); every other Whisper on 30 s."""
    return 25.0 if "distil" in model_id.lower() else 30.0


class WhisperOptions(RunnerOptions):
    """The audio-to-text runner's env vars (see the module docstring)."""

    backend: Literal["transformers", "faster-whisper"] = Field("transformers", description="BACKEND")
    whisper_max_new_tokens: int = Field(444, ge=1, le=444,
                                        description="tokens per window: at most 448 decoder positions - prompt")
    whisper_batch_size: int | None = Field(None, ge=1, description="windows per batch; 24 on CUDA, 8 on the CPU")
    whisper_max_audio_s: float = Field(14_400.0, gt=0, description="longest decoded audio accepted (seconds)")

    @field_validator("backend", mode="before")
    @classmethod
    def _backend(cls, v: object) -> object:
        return (v.strip().lower() or "transformers") if isinstance(v, str) else v


@dataclass
class Transcription:
    """What `decode` hands to `predict`: the upload and the timestamp mode."""

    audio: UploadedFile
    timestamps: Timestamps


class AudioToTextRunner(Runner[schemas.AudioToTextForm, Transcription]):
    route = routes.AUDIO_TO_TEXT
    Options = WhisperOptions
    oom_message: ClassVar[str] = "GPU out of memory."
    error_message: ClassVar[str] = "Audio-to-text pipeline error."
    warmup_tokens: ClassVar[int] = 4

    # --- set-up -----------------------------------------------------------------------------------
    def _configure(self) -> None:
        """Resolved settings as attributes (read per request, so a test may lower them on a live runner)."""
        o = self.options
        self.backend = o.backend
        self.max_new_tokens = o.whisper_max_new_tokens
        self.max_batch = o.whisper_batch_size or (24 if self.device.startswith("cuda") else 8)
        self.max_audio_s = o.whisper_max_audio_s

    def setup(self, ctx: LoadContext) -> None:
        self._configure()
        self._stats_lock = threading.Lock()
        self.stats = {"transcribed": 0, "sequential": 0, "chunked": 0, "cancelled": 0, "audio_s": 0.0}
        s = ctx.settings
        for flag, on in s.optimisations_requested().items():
            if on:
                ctx.note(f"{flag} has no effect on audio-to-text (ignored, as ai-runner does)")
        if self.backend == "faster-whisper":
            from .faster_whisper_backend import FasterWhisperEngine

            self.engine = FasterWhisperEngine.load(ctx, self)
            return
        import torch
        from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

        from .transcribe import WhisperTranscriber

        with ctx.phase("resolve"):
            snapshot = resolve_snapshot(s.model_id, s.model_dir, ALLOW_PATTERNS)
        cuda = ctx.device.startswith("cuda")
        if not cuda or s.model_id in FP32_MODELS:
            dtype = torch.float32
        else:
            dtype = torch.bfloat16 if s.bfloat16 else torch.float16
        with ctx.phase("read_weights"):
            # Straight from safetensors onto the device (device_map): no second copy through host memory.
            processor = AutoProcessor.from_pretrained(snapshot)
            model = AutoModelForSpeechSeq2Seq.from_pretrained(
                snapshot, dtype=dtype, attn_implementation="sdpa", use_safetensors=True, device_map=ctx.device)
        with ctx.phase("to_device"):
            model.eval()
            if cuda:
                torch.cuda.synchronize(ctx.device)
        self.transcriber = WhisperTranscriber(
            model, processor, ctx.device, dtype, chunk_length_s=chunk_length_for(s.model_id),
            max_new_tokens=self.max_new_tokens, max_batch=self.max_batch, attn_implementation="sdpa")
        self.engine = self.transcriber
        ctx.report(dtype=str(dtype).removeprefix("torch."), attention="sdpa (eager only for word-timestamp batches)",
                   **{"long-form": f"{chunk_length_for(s.model_id):g} s windows, batched (up to {self.max_batch}); "
                                   "with timestamps, Whisper's seek loop"})

    def warmup(self) -> None:
        # One short pass: CUDA context, cuBLAS handles and the decode path are ready before /health says so.
        quiet = (0.01 * np.sin(np.linspace(0, 2000 * np.pi, 16_000))).astype(np.float32)
        self.engine.transcribe(quiet, True, max_new_tokens=self.warmup_tokens)

    # --- per request ------------------------------------------------------------------------------
    def decode(self, request: schemas.AudioToTextForm) -> Transcription:
        """The text parts, checked in the contract's order after the SDK's model check: return_timestamps,
        then the metadata duration (a word-timestamp request over 60 minutes is a 400, Q12)."""
        timestamps = parse_return_timestamps(request.return_timestamps)
        duration = parse_metadata_duration(request.metadata)
        if timestamps == "word" and duration is not None and duration > WORD_LIMIT_S:
            raise BadRequest(word_limit_message(self.settings.model_id))
        return Transcription(request.audio, timestamps)

    def predict(self, inputs: Transcription, job: Job) -> schemas.TextResponse:
        timestamps, upload = inputs.timestamps, inputs.audio
        try:
            with job.stage("decode"):
                try:
                    audio = decode_audio(upload.path, max_seconds=self.max_audio_s, check_cancelled=job.step)
                except UnsupportedAudio as exc:
                    log.info("415 for a %d-byte upload: %s", upload.size, exc.why)
                    raise RunnerError(415, UNSUPPORTED_MESSAGE) from None
                except AudioTooLong as exc:
                    raise BadRequest(str(exc)) from None
            # Q12: the decoded length decides, not the (integer-truncated) metadata duration.
            if timestamps == "word" and audio.duration_s > WORD_LIMIT_S:
                raise BadRequest(word_limit_message(self.settings.model_id))
            job.step()
            with job.stage("transcribe"):
                result = self._transcribe(audio, timestamps, job)
        except JobCancelled:
            self._count(cancelled=1)
            raise
        self._count(transcribed=1, audio_s=audio.duration_s,
                    **{"chunked" if result.windows > 1 else "sequential": 1})
        bounded = bound_chunks(result.chunks, audio.duration_s)  # inside [0, duration], in order (issue 14)
        chunks = [schemas.Chunk(timestamp=list(c["timestamp"]), text=c["text"]) for c in bounded]
        return schemas.TextResponse(text=result.text, chunks=chunks)

    def _transcribe(self, audio: DecodedAudio, timestamps: Timestamps, job: Job):
        try:
            return self.engine.transcribe(audio.samples, timestamps, job)
        except NonFiniteOutput:
            integrity_of(self).failed("logits")
            raise
        except (RunnerError, JobCancelled):
            raise
        except Exception as exc:
            if type(exc).__name__ == "OutOfMemoryError":
                raise  # the SDK frees the cache and answers 500 "GPU out of memory."
            log.exception("transcription failed")
            raise RunnerError(400, f"Error during model execution: {exc}.") from exc

    # --- reporting --------------------------------------------------------------------------------
    def _count(self, **amounts: float) -> None:
        with self._stats_lock:
            for key, amount in amounts.items():
                self.stats[key] += amount

    def info(self) -> dict[str, Any]:
        with self._stats_lock:
            stats = dict(self.stats)
        stats["batches"] = getattr(self.engine, "batches_run", None)
        stats["windows"] = getattr(self.engine, "windows_run", None)
        return {
            "backend": self.backend,
            "chunk_length_s": chunk_length_for(self.settings.model_id),
            "max_new_tokens": self.max_new_tokens,
            "max_batch": self.max_batch,
            "max_audio_s": self.max_audio_s,
            "stats": stats,
        }

    @classmethod
    def download_plan(cls, model_id: str) -> list[tuple[str, list[str] | None]]:
        if cls.Options.from_env().backend == "faster-whisper":
            from .faster_whisper_backend import ct2_repo_for

            return [(ct2_repo_for(model_id), None)]
        return [(model_id, ALLOW_PATTERNS)]
