"""Chunked, batched Whisper transcription: the algorithm of transformers' ASR pipeline, run deliberately.

Audio longer than one window is cut into windows of `chunk_length_s` (30 s; 25 s for distil-large-v3) that
overlap by `chunk_length_s / 6` on each side, exactly as the pipeline's `chunk_iter` does. Windows are
featurised in batches (the STFT on the GPU when there is one), each batch is one `generate` call with one
decoder pass per window (`force_unique_generate_call`: Whisper's sequential seek loop is for a single
unbounded input, while the overlap already resolves window edges), and the pipeline's own merge
(`WhisperTokenizer._decode_asr`) stitches the windows and their timestamps back together. Audio of at most
one window is a single window without overlap: the pipeline's sequential mode. With timestamps, audio of
more than one window takes Whisper's seek loop instead (`_seek_transcribe`, issue 14): the fixed windows
mistimed, and could lose, an utterance that straddles their overlap.

What we do differently from the stock runner's `pipeline(..., chunk_length_s=30, batch_size=16)`:
- The batch size follows the number of windows and the free device memory, and halves on CUDA OOM.
- sdpa attention, switched to eager only for the `generate` calls that need cross-attention weights (word
  timestamps), under the same lock, and switched back afterwards. transformers' Whisper `generate` sets
  eager on the shared config for word timestamps and leaves it there, which would slow every later request.
- One lock serialises model calls (Q15): with capacity > 1, requests decode and featurise in parallel and
  take turns on the device batch by batch.
- Cancellation is checked between batches and at every generated token.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from runner_sdk import Job, JobCancelled
from runner_sdk.integrity import NonFiniteOutput

from .options import Timestamps

log = logging.getLogger(__name__)


class _DropLengthNotices(logging.Filter):
    """Whisper's generate sets `max_length` itself, so transformers warns on every call that our
    `max_new_tokens` takes precedence. That is the intent; keep the log for real problems."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith("Both `max_new_tokens`") or msg.startswith("Both `min_new_tokens`"))


logging.getLogger("transformers.generation.utils").addFilter(_DropLengthNotices())


@dataclass
class Window:
    samples: np.ndarray
    stride: tuple[int, int, int] | None  # (window length, left overlap, right overlap) in samples


def windows(audio: np.ndarray, chunk_len: int, stride_len: int) -> list[Window]:
    """The ASR pipeline's chunking (`chunk_iter`): windows of `chunk_len` samples stepping by
    `chunk_len - 2 * stride_len`; the first has no left overlap, the last no right overlap."""
    if len(audio) <= chunk_len:
        return [Window(audio, None)]
    step = chunk_len - 2 * stride_len
    out = []
    for start in range(0, len(audio), step):
        end = start + chunk_len
        chunk = audio[start:end]
        is_last = end >= len(audio)
        left = 0 if start == 0 else stride_len
        right = 0 if is_last else stride_len
        if len(chunk) > left:
            out.append(Window(chunk, (len(chunk), left, right)))
        if is_last:
            break
    return out


@dataclass
class Transcript:
    text: str
    chunks: list[dict[str, Any]] = field(default_factory=list)  # {"timestamp": (start, end), "text": ...}
    windows: int = 0
    batch_size: int = 0


class _CancelOnToken:
    """A stopping criterion that never stops but raises once the request's client is gone."""

    def __init__(self, job: Job):
        self.job = job

    def __call__(self, input_ids, scores, **kwargs):
        if self.job.cancelled:
            raise JobCancelled()
        import torch

        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class _NonFiniteWatch:
    """A logits processor that changes nothing and records, on the device (no sync per token), whether any
    step's scores held NaN or +Infinity."""

    def __init__(self) -> None:
        self.flag = None

    def __call__(self, input_ids, scores):
        import torch

        bad = torch.isnan(scores).any() | torch.isposinf(scores).any()
        self.flag = bad if self.flag is None else self.flag | bad
        return scores

    @property
    def seen(self) -> bool:
        return bool(self.flag) if self.flag is not None else False


class WhisperTranscriber:
    def __init__(self, model, processor, device: str, dtype, *, chunk_length_s: float = 30.0,
                 max_new_tokens: int = 444, max_batch: int = 16, attn_implementation: str = "sdpa"):
        self.model = model
        self.processor = processor
        self.feature_extractor = processor.feature_extractor
        self.tokenizer = processor.tokenizer
        self.device = device
        self.dtype = dtype
        self.sample_rate = self.feature_extractor.sampling_rate
        self.chunk_len = int(round(chunk_length_s * self.sample_rate))
        self.stride_len = int(round(chunk_length_s / 6 * self.sample_rate))
        self.max_new_tokens = max_new_tokens
        self.max_batch = max_batch
        self.attn_implementation = attn_implementation
        self.time_precision = self.feature_extractor.chunk_length / model.config.max_source_positions
        self.lock = threading.Lock()
        self.batches_run = 0  # generate calls, for /runner/info and tests
        self.windows_run = 0

    # --- batch size -------------------------------------------------------------------------------
    def bytes_per_window(self, timestamps: Timestamps, max_new_tokens: int) -> int:
        """Device memory one window needs while it decodes: the decoder's cross-attention keys and values
        over 1500 encoder positions dominate (246 MB for large-v3 in fp16), then its own KV cache, a
        transient encoder layer, and for word timestamps every step's attention weights, kept for the DTW."""
        c = self.model.config
        b = 2 if self.dtype is not None and "16" in str(self.dtype) else 4
        tokens = max_new_tokens + 4
        src = c.max_source_positions
        need = 2 * c.decoder_layers * c.d_model * (src + tokens) * b  # cross + self KV
        need += src * max(c.encoder_ffn_dim, 3 * c.d_model) * b * 3  # one encoder layer's activations
        need += c.num_mel_bins * 2 * src * 4 + c.vocab_size * 4 * 4  # features, logits
        if timestamps == "word":
            need += c.decoder_layers * c.decoder_attention_heads * tokens * (src + tokens) * b
        return int(need)

    def batch_size_for(self, n_windows: int, timestamps: Timestamps, duration_s: float,
                       max_new_tokens: int) -> int:
        cap = self.max_batch
        if timestamps == "word" and duration_s > 200:
            cap = min(cap, 4)  # the stock runner's word-timestamp batch for long audio
        bs = max(1, min(cap, n_windows))
        if self.device.startswith("cuda") and bs > 1:
            import torch

            free, _total = torch.cuda.mem_get_info(self.device)
            free += torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
            fits = int(0.85 * free // self.bytes_per_window(timestamps, max_new_tokens))
            bs = max(1, min(bs, fits))
        return bs

    # --- transcription ----------------------------------------------------------------------------
    def transcribe(self, audio: np.ndarray, timestamps: Timestamps, job: Job | None = None, *,
                   batch_size: int | None = None, max_new_tokens: int | None = None,
                   min_new_tokens: int | None = None) -> Transcript:
        """Text and chunks for 16 kHz mono float32 `audio`. `min_new_tokens` (benchmarks) fixes the tokens
        generated per window: random weights never emit end-of-text, real ones do."""
        max_new_tokens = max_new_tokens or self.max_new_tokens
        if timestamps and len(audio) > self.chunk_len:  # issue 14: see _seek_transcribe
            return self._seek_transcribe(audio, timestamps, job, max_new_tokens, min_new_tokens)
        wins = windows(audio, self.chunk_len, self.stride_len)
        bs = batch_size or self.batch_size_for(len(wins), timestamps, len(audio) / self.sample_rate, max_new_tokens)
        used_bs = bs
        outputs: list[dict[str, Any]] = []
        i = 0
        while i < len(wins):
            if job is not None:
                job.step()
            batch = wins[i:i + bs]
            try:
                outputs += self._generate(batch, timestamps, job, max_new_tokens, min_new_tokens)
                i += len(batch)
                continue
            except Exception as exc:
                if type(exc).__name__ != "OutOfMemoryError" or bs == 1:
                    raise
            # Out of the except clause: its traceback (and the tensors its frames hold) is gone now.
            self._free_cache()
            bs = max(1, bs // 2)
            log.warning("CUDA out of memory at batch %d; retrying at batch %d", len(batch), bs)
        text, optional = self.tokenizer._decode_asr(
            outputs, return_timestamps=timestamps, return_language=None, time_precision=self.time_precision)
        chunks = optional.get("chunks", []) if timestamps else []
        return Transcript(text=text, chunks=chunks, windows=len(wins), batch_size=min(used_bs, len(wins)))

    def _seek_transcribe(self, audio: np.ndarray, timestamps: Timestamps, job: Job | None, max_new_tokens: int,
                         min_new_tokens: int | None) -> Transcript:
        """Whisper's own long-form loop, for timestamped output of more than one window (issue 14).

        With timestamps, Whisper ends a window whose last utterance it judges unfinished with that utterance's
        start timestamp alone (`...<|22.60|><|23.40|><|endoftext|>`): the text after it belongs to the next
        window, which must start there. Fixed, overlapping windows never do: the unfinished utterance is left
        to the next window's left overlap, where `_decode_asr` keeps its text but not its timestamps, and
        where the padded short last window may decode it as a hallucination (the utterance is lost) or not at
        all when the window stopped before the next one begins. Here each window starts where the previous
        one's finished text ends (OpenAI's `seek`), one window per `generate` call.
        """
        texts: list[str] = []
        chunks: list[dict[str, Any]] = []
        seek, n = 0, 0
        while seek < len(audio):
            if job is not None:
                job.step()
            win = Window(audio[seek:seek + self.chunk_len], None)
            out = self._generate([win], timestamps, job, max_new_tokens, min_new_tokens)[0]
            n += 1
            resume = None if seek + self.chunk_len >= len(audio) else self._unfinished(out)
            text, optional = self.tokenizer._decode_asr(
                [out], return_timestamps=timestamps, return_language=None, time_precision=self.time_precision)
            offset = seek / self.sample_rate
            texts.append(text)
            for c in optional.get("chunks", []):
                start, end = c["timestamp"]
                chunks.append({**c, "timestamp": (None if start is None else round(start + offset, 2),
                                                  None if end is None else round(end + offset, 2))})
            seek += len(win.samples) if resume is None else resume
        return Transcript(text="".join(texts), chunks=chunks, windows=n, batch_size=1)

    def _unfinished(self, out: dict[str, Any]) -> int | None:
        """Samples into the window where its unfinished last utterance starts, that utterance's tokens
        dropped from `out`; None when the window ended cleanly (or the start is too early to make progress)."""
        tokens = out["tokens"][0].tolist()
        begin = self.tokenizer.convert_tokens_to_ids("<|notimestamps|>") + 1
        eot = self.tokenizer.eos_token_id
        k = len(tokens)
        while k > 0 and tokens[k - 1] == eot:
            k -= 1
        if k < 2 or tokens[k - 1] < begin or tokens[k - 2] < begin:
            return None
        start_s = (tokens[k - 1] - begin) * self.time_precision
        if start_s < 1.0:
            return None
        out["tokens"] = out["tokens"][:, :k - 1]
        if "token_timestamps" in out:
            out["token_timestamps"] = out["token_timestamps"][:, :k - 1]
        return int(round(start_s * self.sample_rate))

    def _features(self, batch: list[Window]):
        feats = self.feature_extractor(
            [w.samples for w in batch], sampling_rate=self.sample_rate, return_tensors="pt",
            return_attention_mask=True, device=self.device if self.device.startswith("cuda") else "cpu")
        features = feats.input_features.to(self.device, dtype=self.dtype, non_blocking=True)
        mask = feats.attention_mask.to(self.device)
        return features, mask

    def _generate(self, batch: list[Window], timestamps: Timestamps, job: Job | None, max_new_tokens: int,
                  min_new_tokens: int | None) -> list[dict[str, Any]]:
        import torch

        features, mask = self._features(batch)
        kwargs: dict[str, Any] = {
            "return_timestamps": bool(timestamps), "max_new_tokens": max_new_tokens,
            "force_unique_generate_call": True,
            # The language is detected per window; the task is always transcription (contract 8.2). Left
            # unset, it would depend on the checkpoint's legacy `forced_decoder_ids`.
            "task": "transcribe",
        }
        if min_new_tokens:
            kwargs["min_new_tokens"] = min_new_tokens
        if timestamps == "word":
            kwargs["return_token_timestamps"] = True
        if job is not None:
            from transformers import StoppingCriteriaList

            kwargs["stopping_criteria"] = StoppingCriteriaList([_CancelOnToken(job)])
        from transformers import LogitsProcessorList

        watch = _NonFiniteWatch()
        kwargs["logits_processor"] = LogitsProcessorList([watch])
        with self.lock:
            self._set_attention("eager" if timestamps == "word" else self.attn_implementation)
            try:
                with torch.inference_mode():
                    out = self.model.generate(features, attention_mask=mask, **kwargs)
            finally:
                self._set_attention(self.attn_implementation)
            self.batches_run += 1
            self.windows_run += len(batch)
        if watch.seen:  # NaN logits decode to confident garbage ("!!!!"): never a 200 (issue 14)
            raise NonFiniteOutput("logits", "Transcription stopped.")
        sequences = out["sequences"] if isinstance(out, dict) else out
        sequences = sequences.cpu()
        token_ts = out["token_timestamps"].cpu() if timestamps == "word" else None
        results = []
        for j, win in enumerate(batch):
            item: dict[str, Any] = {"tokens": sequences[j:j + 1]}
            if token_ts is not None:
                item["token_timestamps"] = token_ts[j:j + 1]
            if win.stride is not None:  # in seconds, as the pipeline's postprocess hands them to _decode_asr
                item["stride"] = tuple(s / self.sample_rate for s in win.stride)
            results.append(item)
        return results

    def _set_attention(self, implementation: str) -> None:
        # What transformers' Whisper generate itself does for word timestamps (see module docstring).
        self.model.config._attn_implementation = implementation

    def _free_cache(self) -> None:
        if self.device.startswith("cuda"):
            import gc

            import torch

            gc.collect()
            torch.cuda.empty_cache()
