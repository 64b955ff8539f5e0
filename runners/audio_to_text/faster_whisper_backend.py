"""BACKEND=faster-whisper: Whisper on CTranslate2 (the `faster-whisper` extra), as the stock runner offers.

Imported only when selected, so the default image needs neither package. The model is a CTranslate2
conversion: MODEL_ID itself when its snapshot holds `model.bin`, else the Systran conversion of that id
(`openai/whisper-large-v3` -> `Systran/faster-whisper-large-v3`), else FASTER_WHISPER_MODEL (an id or a
directory). Audio is still decoded by our PyAV decoder (decode.py), so formats and 415s do not change.

Transcription is faster-whisper's own long-form loop: beam 5 (as the stock runner), no VAD (that would need
onnxruntime). Unlike the stock backend, the response shapes are the contract's: `false` gives no chunks,
`true` segment chunks, `word` word chunks. Calls are serialised by a lock (Q15); cancellation is checked
between segments.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from runner_sdk import Job, LoadContext
from runner_sdk.resolve import cache_folder, is_local_dir, resolve_snapshot

from .options import Timestamps
from .transcribe import Transcript

CT2_REPOS = {
    "openai/whisper-large-v3": "Systran/faster-whisper-large-v3",
    "openai/whisper-large-v2": "Systran/faster-whisper-large-v2",
    "openai/whisper-medium": "Systran/faster-whisper-medium",
    "distil-whisper/distil-large-v3": "Systran/faster-distil-whisper-large-v3",
}

MISSING = ("BACKEND=faster-whisper needs the faster-whisper package (pip install 'livepeer-runner-sdk"
           "[faster-whisper]', which brings ctranslate2); it is not installed in this image")


def ct2_repo_for(model_id: str) -> str:
    return os.environ.get("FASTER_WHISPER_MODEL") or CT2_REPOS.get(model_id, model_id)


def _is_ct2(folder: Path) -> bool:
    return (folder / "model.bin").exists()


def resolve_ct2(model_id: str, model_dir: Path) -> Path:
    """The CTranslate2 model folder for `model_id`: the id itself when it is a conversion, else its mapping."""
    if is_local_dir(model_id) and _is_ct2(Path(os.path.expanduser(model_id))):
        return Path(os.path.expanduser(model_id))
    if cache_folder(model_dir, model_id).exists():
        snapshot = resolve_snapshot(model_id, model_dir, download=False)
        if _is_ct2(snapshot):
            return snapshot
    path = resolve_snapshot(ct2_repo_for(model_id), model_dir)
    if not _is_ct2(path):
        raise ValueError(f"{path} is not a CTranslate2 model (no model.bin); set FASTER_WHISPER_MODEL")
    return path


class FasterWhisperEngine:
    def __init__(self, model, max_new_tokens: int, beam_size: int = 5):
        self.model = model
        self.max_new_tokens = max_new_tokens
        self.beam_size = beam_size
        self.lock = threading.Lock()
        self.batches_run = 0  # decoded segments
        self.windows_run = 0

    @classmethod
    def load(cls, ctx: LoadContext, runner) -> FasterWhisperEngine:
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise RuntimeError(MISSING) from exc
        s = ctx.settings
        with ctx.phase("resolve"):
            path = resolve_ct2(s.model_id, s.model_dir)
        cuda = ctx.device.startswith("cuda")
        with ctx.phase("read_weights"):
            model = WhisperModel(str(path), device="cuda" if cuda else "cpu",
                                 device_index=int(ctx.device.split(":")[1]) if ":" in ctx.device else 0,
                                 compute_type="float16" if cuda else "default", local_files_only=True)
        ctx.report(dtype="float16" if cuda else "default",
                   backend=f"faster-whisper (CTranslate2) from {path.name}")
        ctx.note(f"faster-whisper model: {path}")
        return cls(model, runner.max_new_tokens)

    def transcribe(self, audio: np.ndarray, timestamps: Timestamps, job: Job | None = None, *,
                   max_new_tokens: int | None = None, **_ignored: Any) -> Transcript:
        text, chunks = [], []
        with self.lock:
            segments, _info = self.model.transcribe(
                audio, beam_size=self.beam_size, task="transcribe", vad_filter=False,
                word_timestamps=timestamps == "word", without_timestamps=not timestamps,
                max_new_tokens=max_new_tokens or self.max_new_tokens)
            for segment in segments:  # a generator: each step decodes the next window
                self.batches_run += 1
                if job is not None:
                    job.step()
                text.append(segment.text)
                if timestamps == "word":  # CTranslate2 gives numpy floats; JSON needs Python ones
                    chunks += [{"timestamp": (float(w.start), float(w.end)), "text": w.word}
                               for w in segment.words or []]
                elif timestamps:
                    chunks.append({"timestamp": (float(segment.start), float(segment.end)), "text": segment.text})
        self.windows_run += 1
        return Transcript(text="".join(text), chunks=chunks, windows=1, batch_size=1)


def synthesize_ct2(model_id: str, model_dir: Path, scale: str = "tiny") -> Path:
    """A synthetic Whisper for `model_id` (synth.py), converted to CTranslate2 and installed as its
    Systran repo in the HF cache layout under `model_dir` (tests, benchmarks)."""
    import tempfile

    from ctranslate2.converters import TransformersConverter

    from runner_sdk.hfcache import install_snapshot

    from .synth import synthesize

    with tempfile.TemporaryDirectory(prefix="synth-hf-") as hf_dir:
        snapshot = synthesize(model_id, Path(hf_dir), scale)
        Path(model_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".synth-ct2-", dir=str(model_dir)) as tmp:
            out = Path(tmp) / "ct2"
            TransformersConverter(str(snapshot), copy_files=["tokenizer.json", "preprocessor_config.json"]).convert(
                str(out), quantization="float16" if scale == "full" else "float32", force=True)
            return install_snapshot(out, Path(model_dir), CT2_REPOS.get(model_id, model_id + "-ct2"))
