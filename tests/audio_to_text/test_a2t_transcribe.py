"""The chunked, batched transcriber on the tiny synthetic Whisper, loaded from disk like real weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from runners.audio_to_text.synth import build_config, shape_for
from runners.audio_to_text.testaudio import tone
from runners.audio_to_text.transcribe import WhisperTranscriber, windows


@pytest.fixture(scope="module")
def whisper(whisper_model_dir):
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

    from runner_sdk.resolve import resolve_snapshot

    snapshot = resolve_snapshot("openai/whisper-large-v3", whisper_model_dir, download=False)
    model = AutoModelForSpeechSeq2Seq.from_pretrained(snapshot, attn_implementation="sdpa").eval()
    return model, AutoProcessor.from_pretrained(snapshot)


@pytest.fixture
def transcriber(whisper):
    model, processor = whisper
    return WhisperTranscriber(model, processor, "cpu", torch.float32, max_new_tokens=6, max_batch=2)


class GenerateSpy:
    """Wraps model.generate: records each call's batch size and attention implementation."""

    def __init__(self, model, fail_above: int | None = None):
        self.model, self.inner, self.fail_above = model, model.generate, fail_above
        self.calls: list[tuple[int, str]] = []

    def __call__(self, features, **kwargs):
        self.calls.append((features.shape[0], self.model.config._attn_implementation))
        if self.fail_above is not None and features.shape[0] > self.fail_above:
            raise _OutOfMemory("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(features, **kwargs)


class _OutOfMemory(RuntimeError):
    pass


_OutOfMemory.__name__ = "OutOfMemoryError"  # what torch.cuda.OutOfMemoryError is called


@pytest.mark.parametrize("seconds", [0.5, 29.99, 30.0, 30.01, 45.0, 65.0, 121.3])
def test_a2t_windows_match_the_asr_pipeline_chunking(seconds):
    from transformers.pipelines.automatic_speech_recognition import chunk_iter

    audio = np.zeros(int(round(seconds * 16_000)), dtype=np.float32)
    chunk, stride = 30 * 16_000, 5 * 16_000
    ours = windows(audio, chunk, stride)
    if len(audio) <= chunk:
        assert len(ours) == 1 and ours[0].stride is None  # sequential mode: one window, no overlap
        return
    class Lengths:  # stands in for the feature extractor: records each chunk's length
        sampling_rate = 16_000

        def __call__(self, x, **kwargs):
            return {"n": len(x)}

    theirs = list(chunk_iter(audio, Lengths(), chunk, stride, stride))
    assert [w.stride for w in ours] == [t["stride"] for t in theirs]
    assert [len(w.samples) for w in ours] == [t["n"] for t in theirs]


def test_a2t_batches_and_attention_per_mode(transcriber, monkeypatch):
    spy = GenerateSpy(transcriber.model)
    monkeypatch.setattr(transcriber.model, "generate", spy)
    audio = tone(65.0)  # three overlapping windows without timestamps; with them, Whisper's seek loop
    transcriber.transcribe(audio, False, max_new_tokens=2)
    transcriber.transcribe(audio, "word", max_new_tokens=2)
    transcriber.transcribe(audio, True, max_new_tokens=2)
    assert spy.calls == [(2, "sdpa"), (1, "sdpa")] + [(1, "eager")] * 3 + [(1, "sdpa")] * 3
    assert transcriber.model.config._attn_implementation == "sdpa"


def test_a2t_transformers_leaves_eager_attention_behind(whisper):
    """Why we restore the attention: Whisper's own generate switches the shared config for good."""
    model, processor = whisper
    features = processor.feature_extractor([tone(1.0)], sampling_rate=16_000, return_tensors="pt").input_features
    try:
        with torch.inference_mode():
            model.generate(features, return_timestamps=True, return_token_timestamps=True, max_new_tokens=2)
        assert model.config._attn_implementation == "eager"
    finally:
        model.config._attn_implementation = "sdpa"


def test_a2t_out_of_memory_halves_the_batch(transcriber, monkeypatch):
    audio = tone(45.0)  # two windows
    reference = transcriber.transcribe(audio, False, batch_size=1, max_new_tokens=3)
    spy = GenerateSpy(transcriber.model, fail_above=1)
    monkeypatch.setattr(transcriber.model, "generate", spy)
    result = transcriber.transcribe(audio, False, batch_size=2, max_new_tokens=3)
    assert [n for n, _ in spy.calls] == [2, 1, 1]
    assert (result.text, result.chunks) == (reference.text, reference.chunks)
    assert transcriber.model.config._attn_implementation == "sdpa"


def test_a2t_out_of_memory_at_batch_1_is_raised(transcriber, monkeypatch):
    monkeypatch.setattr(transcriber.model, "generate", GenerateSpy(transcriber.model, fail_above=0))
    with pytest.raises(RuntimeError, match="out of memory"):
        transcriber.transcribe(tone(5.0), True)


def test_a2t_fixed_tokens_per_window(transcriber, monkeypatch):
    """Benchmarks fix the tokens per window (min = max new tokens): the decoder cost is then known."""
    lengths = []
    inner = transcriber.model.generate

    def generate(features, **kwargs):
        out = inner(features, **kwargs)
        lengths.append(out.shape[-1])
        return out

    monkeypatch.setattr(transcriber.model, "generate", generate)
    transcriber.transcribe(tone(25.0), False, max_new_tokens=9, min_new_tokens=9)
    prompt = 4  # <|startoftranscript|> <|lang|> <|transcribe|> <|notimestamps|>
    assert lengths == [prompt + 9]


def test_a2t_batch_size_rules(transcriber):
    assert transcriber.batch_size_for(1, True, 10.0, 444) == 1
    assert transcriber.batch_size_for(5, True, 110.0, 444) == 2  # capped by max_batch
    transcriber.max_batch = 16
    assert transcriber.batch_size_for(30, True, 610.0, 444) == 16
    assert transcriber.batch_size_for(30, "word", 610.0, 444) == 4  # the stock runner's word batch past 200 s
    assert transcriber.batch_size_for(9, "word", 190.0, 444) == 9


def test_a2t_window_memory_estimate_at_full_scale(transcriber):
    """large-v3 in fp16: the decoder's cross-attention K/V over 1500 positions is 32 x 2 x 1500 x 1280 x 2 B."""
    from transformers import WhisperForConditionalGeneration

    with torch.device("meta"):
        full = WhisperForConditionalGeneration(build_config(shape_for("openai/whisper-large-v3", "full")))
    t = WhisperTranscriber(full, transcriber.processor, "cpu", torch.float16)
    cross_kv = 32 * 2 * 1500 * 1280 * 2
    segment = t.bytes_per_window(True, 444)
    assert cross_kv < segment < 2 * cross_kv
    assert t.bytes_per_window("word", 444) > segment + 32 * 20 * 448 * 1500 * 2 * 0.9
