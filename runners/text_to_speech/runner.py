"""Text-to-speech reference runner: Parler-TTS (`parler-tts/parler-tts-large-v1`, go-livepeer's default, and
`-mini-v1`; needs the `parler-tts` package and its own environment, see README.md) and VITS/MMS-TTS
(`facebook/mms-tts-eng` and other `VitsModel` checkpoints, in the main environment), contract 3.13, 8.9.

Per request: the SDK checks model_id (no trailing period on this route); `decode` answers an empty `text` with
upstream's 400 `Text input must be provided.` (after auth, Q44), bounds its length (Q43) and splits it into
sentences; `predict` synthesises them in batches (a cancelled job stops between batches, and Parler's generate
stops at the next token), joins them with a short pause and answers a 16-bit PCM WAV at the model's own
sampling rate (Q42) in a data URL. `seed` (an extension; go-livepeer never sends it) makes sampling
repeatable; without it each call differs, as upstream.

Configuration (env vars, on top of the SDK's):
- TTS_MAX_CHARS: longest text accepted (default 5000 code points; 400 beyond).
- TTS_BATCH_SIZE: sentences per model call (default 8 on CUDA, 4 on the CPU).
- TTS_SENTENCE_CHARS: longest piece given to the model at once (default 200).
- TTS_MAX_NEW_TOKENS: Parler only: codec frames per sentence (default: the model's generation config).
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from pydantic import Field

from runner_sdk import BadRequest, Job, LoadContext, Runner, RunnerOptions, routes, schemas
from runner_sdk.resolve import resolve_snapshot

from .backends import ParlerBackend, VitsBackend, model_type
from .text import join_audio, split_sentences, wav_data_url

log = logging.getLogger(__name__)
ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model"]
EMPTY_TEXT = "Text input must be provided."


class TextToSpeechParams(schemas.TextToSpeechParams):
    """The contract's body plus `seed` (an extension: absent means a fresh random seed per call)."""

    seed: int | None = Field(None, ge=0, lt=2**63, description="Seed for sampling (extension).")


ROUTE = replace(routes.TEXT_TO_SPEECH, request_model=TextToSpeechParams)


class TtsOptions(RunnerOptions):
    """The text-to-speech runner's env vars (see the module docstring)."""

    tts_max_chars: int = Field(5000, ge=1, description="longest text accepted, in code points")
    tts_batch_size: int | None = Field(None, ge=1, description="sentences per model call; 8 CUDA, 4 CPU")
    tts_sentence_chars: int = Field(200, ge=20, description="longest piece synthesised in one sequence")
    tts_max_new_tokens: int | None = Field(None, ge=1, description="Parler: codec frames per sentence")


@dataclass
class Speech:
    """What `decode` hands to `predict`."""

    sentences: list[str]
    description: str
    seed: int


class TextToSpeechRunner(Runner[TextToSpeechParams, Speech]):
    """Parler-TTS or VITS on /text-to-speech (see the module docstring)."""

    route = ROUTE
    Options = TtsOptions
    oom_message: ClassVar[str] = "Out of memory error. Try reducing text input length."
    error_message: ClassVar[str] = "Text-to-speech pipeline error."

    def setup(self, ctx: LoadContext) -> None:
        """Load the model the snapshot's config names (parler_tts or vits) onto the device, by phase.

        Args:
            ctx: the load context (settings, device, phase timer).
        Raises:
            RuntimeError: the config names another model type. ImportError: a Parler model without the
                parler-tts package (the main environment). ModelNotFound: not in MODEL_DIR.
        """
        import torch

        s, o = ctx.settings, self.options
        for flag, on in s.optimisations_requested().items():
            if on:
                ctx.note(f"{flag} has no effect on text-to-speech (ignored, as ai-runner does)")
        with ctx.phase("resolve"):
            snapshot = resolve_snapshot(s.model_id, s.model_dir, ALLOW_PATTERNS)
            kind = model_type(snapshot)
        cuda = ctx.device.startswith("cuda")
        with ctx.phase("read_weights"):
            if kind == "parler_tts":
                dtype = (torch.bfloat16 if s.bfloat16 else torch.float16) if cuda else torch.float32
                self.backend: Any = ParlerBackend(snapshot, ctx.device, dtype, o.tts_max_new_tokens)
            elif kind == "vits":
                dtype = torch.float32  # VITS's flows and vocoder are small; fp32 keeps them exact
                self.backend = VitsBackend(snapshot, ctx.device, dtype)
            else:
                raise RuntimeError(f"{s.model_id}: model_type {kind!r} is not a text-to-speech model this runner "
                                   "serves (parler_tts, vits)")
        with ctx.phase("to_device"):
            if cuda:
                torch.cuda.synchronize(ctx.device)
        self.batch_size = o.tts_batch_size or (8 if cuda else 4)
        self._lock = threading.Lock()  # one model call at a time: seeding the global RNG stays per call
        self.stats = {"requests": 0, "sentences": 0, "batches": 0, "audio_s": 0.0}
        ctx.report(dtype=str(dtype).removeprefix("torch."), model=kind,
                   sentences=f"split at sentence ends, {self.batch_size} per model call",
                   sampling_rate=f"{self.backend.sampling_rate} Hz, the model's own (written in the WAV header)")
        if kind == "parler_tts":
            ctx.report(precision="the dtype applied to the model itself, not the tokenizer (Q41)")

    def warmup(self) -> None:
        """One short sentence before /health says IDLE."""
        self._synthesize(Speech(["Hello."], schemas.TextToSpeechParams().description, 0), Job())

    # --- per request ------------------------------------------------------------------------------
    def decode(self, request: TextToSpeechParams) -> Speech:
        """Check the text and split it into sentences.

        Args:
            request: the JSON body.
        Returns:
            The sentences, the description and the seed (random when absent).
        Raises:
            BadRequest: empty text (upstream's message), or text over TTS_MAX_CHARS.
        """
        text = request.text
        if not text or not text.strip():
            raise BadRequest(EMPTY_TEXT)
        if len(text) > self.options.tts_max_chars:
            raise BadRequest(f"Text is {len(text)} characters long; this runner accepts at most "
                             f"{self.options.tts_max_chars}.")
        seed = request.seed if request.seed is not None else secrets.randbits(63)
        return Speech(split_sentences(text, self.options.tts_sentence_chars), request.description, seed)

    def predict(self, inputs: Speech, job: Job) -> schemas.AudioResponse:
        """Synthesise the sentences in batches and answer one WAV data URL.

        Args:
            inputs: from `decode`. job: this request's job.
        Returns:
            `{"audio": {"url": "data:audio/wav;base64,..."}}` at the model's sampling rate.
        Raises:
            JobCancelled: the client went away (checked between batches; Parler also stops mid-generate).
        """
        with job.stage("synthesize"):
            parts = self._synthesize(inputs, job)
        with job.stage("encode"):
            rate = self.backend.sampling_rate
            audio = join_audio(parts, rate)
            url = wav_data_url(audio, rate)
        with self._lock:
            self.stats["requests"] += 1
            self.stats["audio_s"] += len(audio) / rate
        return schemas.AudioResponse(audio=schemas.MediaURL(url=url))

    def _synthesize(self, speech: Speech, job: Job) -> list:
        parts: list = []
        n = self.batch_size
        for i in range(0, len(speech.sentences), n):
            job.step()
            batch = speech.sentences[i:i + n]
            with self._lock:
                parts += self.backend.synthesize(batch, speech.description, (speech.seed + i) % 2**63,
                                                 lambda: job.cancelled)
                self.stats["sentences"] += len(batch)
                self.stats["batches"] += 1
        job.step()
        return parts

    def info(self) -> dict[str, Any]:
        """The model type, sampling rate, batch size and counters, for /runner/info."""
        return {"model": self.backend.kind, "sampling_rate": self.backend.sampling_rate,
                "batch_size": self.batch_size, "stats": dict(self.stats)}

    @classmethod
    def download_plan(cls, model_id: str) -> list[tuple[str, list[str] | None]]:
        """The repo's configs, tokenizer files and safetensors weights."""
        return [(model_id, ALLOW_PATTERNS)]
