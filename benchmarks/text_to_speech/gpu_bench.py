"""GPU benchmark: text-to-speech with a full-scale synthetic model, a paragraph of four sentences per request,
our runner beside the naive transformers baseline in the same run.

    python benchmarks/text_to_speech/gpu_bench.py [--requests 10] [--budget-s 420]
        [--out benchmarks/results/text_to_speech/gpu.md]
    python benchmarks/text_to_speech/gpu_bench.py --device cpu --scale tiny --requests 2 --in-process   # CPU

The model is facebook/mms-tts-eng (VITS, 16 kHz) in the main environment; in the Parler-TTS environment
(.venv-tts) it is go-livepeer's default parler-tts/parler-tts-large-v1 (44.1 kHz), with
TTS_MAX_NEW_TOKENS=344 (4 s of audio per sentence: random weights never end a sentence on their own).

Sections (benchmarks/image_to_text/harness.py): synth; the runner at capacity 1 (cold load by phase, warm
VRAM, p50/p95, peak VRAM) and at capacity 2 with two clients; the naive baseline, as upstream: the model in
fp32 (`from_pretrained(...).to(device)`), the whole text in one sequence and one model call per request, the
WAV written with the stdlib.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.image_to_text.harness import Spec, run, timed_calls  # noqa: E402

PARLER = importlib.util.find_spec("parler_tts") is not None
MODEL = "parler-tts/parler-tts-large-v1" if PARLER else "facebook/mms-tts-eng"


def request(i: int, scale: str) -> dict:
    """httpx keyword arguments of request `i` (the bench workload's, at the scale's size)."""
    from runner_sdk.bench.workloads import TextToSpeech

    return TextToSpeech("text-to-speech", sentences=4 if scale == "full" else 2).request(i)


def synth(model_id: str, model_dir: Path, scale: str) -> None:
    """Synthetic weights for `model_id` at `scale` in `model_dir`."""
    from runners.text_to_speech.synth import synthesize

    synthesize(model_id, model_dir, scale)


def frames(scale: str) -> int:
    return 344 if scale == "full" else 20


def naive(model_dir: Path, n: int, device: str, scale: str) -> dict:
    """One fp32 model call per request on the whole text, WAV at the model's rate."""
    import time

    import torch
    from transformers import AutoTokenizer

    from runner_sdk.resolve import resolve_snapshot
    from runners.text_to_speech.text import wav_data_url

    t0 = time.perf_counter()
    snapshot = resolve_snapshot(MODEL, model_dir)
    tokenizer = AutoTokenizer.from_pretrained(snapshot)
    if PARLER:
        from parler_tts import ParlerTTSForConditionalGeneration

        model = ParlerTTSForConditionalGeneration.from_pretrained(snapshot).to(device)
    else:
        from transformers import VitsModel

        model = VitsModel.from_pretrained(snapshot, use_safetensors=True).to(device)
    rate = int(model.config.sampling_rate)
    ready_s = time.perf_counter() - t0

    def call(i: int) -> None:
        text = request(i, scale)["json"]["text"]
        with torch.inference_mode():
            if PARLER:
                desc = tokenizer("A male speaker delivers a slightly expressive speech.", return_tensors="pt")
                audio = model.generate(input_ids=desc.input_ids.to(device),
                                       prompt_input_ids=tokenizer(text, return_tensors="pt").input_ids.to(device),
                                       max_new_tokens=frames(scale) * 4)[0]
            else:
                audio = model(**tokenizer(text, return_tensors="pt").to(device)).waveform[0]
        wav_data_url(audio.float().cpu().numpy(), rate)

    return {"ready_s": ready_s, **timed_calls(call, n, device)}


def env(scale: str) -> dict:
    return {"TTS_MAX_NEW_TOKENS": str(frames(scale))} if PARLER else {}


SPEC = Spec(f"Text-to-speech: synthetic {MODEL}, four sentences per request", "text-to-speech", MODEL, synth,
            request, naive, env, "benchmarks/results/text_to_speech/gpu.md")


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark (arguments as in the module docstring); returns the numbers, writes the report."""
    return run(SPEC, argv)


if __name__ == "__main__":
    main()
