"""GPU benchmark: image-to-text with full-scale synthetic BLIP large (ViT-L/16 at 384 px + BERT-base decoder,
446 M parameters), a 512 x 512 PNG per request (a prompt on every other one), our runner beside the
naive transformers baseline in the same run.

    python benchmarks/image_to_text/gpu_bench.py [--requests 10] [--budget-s 420]
        [--out benchmarks/results/image_to_text/gpu.md]
    python benchmarks/image_to_text/gpu_bench.py --device cpu --scale tiny --requests 2 --in-process   # CPU

Sections (harness.py): synth; the runner at capacity 1 (cold load by phase, warm VRAM, p50/p95, peak VRAM)
and at capacity 2 with two clients (waiting requests captioned in one generate call); the naive baseline, as
upstream: `BlipForConditionalGeneration.from_pretrained(...).to(device)` in fp32, `BlipProcessor`, one
`generate` per request with the generation defaults (20 tokens, greedy). Random weights never stop early, so
every caption is the full token budget in both (BLIP_MAX_NEW_TOKENS=20 in the runner).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.image_to_text.harness import Spec, run, timed_calls  # noqa: E402

MODEL = "Salesforce/blip-image-captioning-large"


def side(scale: str) -> int:
    return 512 if scale == "full" else 64


def request(i: int, scale: str) -> dict:
    """httpx keyword arguments of request `i` (the bench workload's, at the scale's size)."""
    from runner_sdk.bench.workloads import ImageToText

    return ImageToText("image-to-text", side=side(scale)).request(i)


def synth(model_id: str, model_dir: Path, scale: str) -> None:
    """Synthetic weights for `model_id` at `scale` in `model_dir`."""
    from runners.image_to_text.synth import synthesize

    synthesize(model_id, model_dir, scale)


def naive(model_dir: Path, n: int, device: str, scale: str) -> dict:
    """Upstream's pipeline: fp32 BLIP, the processor on each image, one generate per request."""
    import io
    import time

    import torch
    from PIL import Image
    from transformers import BlipForConditionalGeneration, BlipProcessor

    from runner_sdk.bench.workloads import sample_png
    from runner_sdk.resolve import resolve_snapshot

    t0 = time.perf_counter()
    snapshot = resolve_snapshot(MODEL, model_dir)
    processor = BlipProcessor.from_pretrained(snapshot)
    model = BlipForConditionalGeneration.from_pretrained(snapshot, use_safetensors=True).to(device)
    ready_s = time.perf_counter() - t0
    data = sample_png(side(scale), side(scale))

    def call(i: int) -> None:
        image = Image.open(io.BytesIO(data)).convert("RGB")
        inputs = processor(images=image, text="a photo of" if i % 2 else None, return_tensors="pt").to(device)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=20 if scale == "full" else 6)
        processor.decode(out[0], skip_special_tokens=True)

    return {"ready_s": ready_s, **timed_calls(call, n, device)}


def env(scale: str) -> dict:
    return {"BLIP_MAX_NEW_TOKENS": "20" if scale == "full" else "6"}


SPEC = Spec("Image-to-text: synthetic BLIP large, 512x512 input", "image-to-text", MODEL, synth, request, naive,
            env, "benchmarks/results/image_to_text/gpu.md")


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark (arguments as in the module docstring); returns the numbers, writes the report."""
    return run(SPEC, argv)


if __name__ == "__main__":
    main()
