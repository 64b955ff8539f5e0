"""GPU benchmark: upscale with a full-scale synthetic `stabilityai/stable-diffusion-x4-upscaler`, our runner
beside the naive diffusers baseline in the same run.

    python benchmarks/upscale/gpu_bench.py [--requests 5] [--budget-s 420] [--out benchmarks/results/upscale/gpu.md]
    python benchmarks/upscale/gpu_bench.py --device cpu --scale tiny --requests 2 --in-process   # CPU

Sections (bench_common.py): synth at full scale (UNet 473M, VAE, OpenCLIP-H text tower; random fp16); the
runner at capacity 1 (cold load by phase, warm VRAM, p50/p95 and peak VRAM of a 256x256 -> 1024x1024 upscale,
25 steps, guidance 9, noise level 20) and capacity 2; the naive baseline: plain diffusers
`StableDiffusionUpscalePipeline.from_pretrained(variant="fp16").to(device)`, the whole image in one call,
Pillow's default PNG. Then a 512x512 input (2048x2048 out): the runner's tiled path (256-pixel tiles) beside
the naive single call, whose VAE decode of a 2048x2048 image is where upstream runs out of memory.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.image_to_image.bench_common import (  # noqa: E402
    Spec,
    naive_row,
    png_data_url,
    run,
    runner_row,
    timed_calls,
)

MODEL = "stabilityai/stable-diffusion-x4-upscaler"
PROMPT = "a sharp photo of a lighthouse"
STEPS = 25


def side(scale: str, large: bool = False) -> int:
    return (512 if large else 256) if scale == "full" else (48 if large else 16)


def request(i: int, scale: str, large: bool = False) -> tuple[dict, bytes]:
    from runner_sdk.bench.workloads import sample_png

    n = side(scale, large)
    steps = STEPS if scale == "full" else 2
    return {"prompt": PROMPT, "model_id": MODEL, "seed": i, "num_inference_steps": steps}, sample_png(n, n)


def synth(model_id: str, model_dir: Path, scale: str) -> None:
    from runners.upscale.synth import synthesize

    synthesize(model_id, model_dir, scale)


def naive(model_dir: Path, n: int, device: str, scale: str, variant: str = "") -> dict:
    """Plain diffusers, as upstream's pipelines/upscale.py: one call for the whole image (variant "large":
    the large input)."""
    large = variant == "large"
    t0 = time.perf_counter()
    import io

    import torch
    from diffusers import StableDiffusionUpscalePipeline
    from PIL import Image

    from runner_sdk.bench.workloads import sample_png
    from runner_sdk.resolve import resolve_snapshot

    cuda = device.startswith("cuda")
    pipe = StableDiffusionUpscalePipeline.from_pretrained(
        str(resolve_snapshot(MODEL, model_dir)), torch_dtype=torch.float16 if cuda else torch.float32,
        variant="fp16" if cuda else None).to(device)
    pipe.set_progress_bar_config(disable=True)
    ready_s = time.perf_counter() - t0
    image = Image.open(io.BytesIO(sample_png(side(scale, large), side(scale, large)))).convert("RGB")
    steps = STEPS if scale == "full" else 2

    def call(i: int) -> None:
        out = pipe(prompt=PROMPT, image=image, num_inference_steps=steps,
                   generator=torch.Generator(device).manual_seed(i)).images[0]
        png_data_url(out)

    return {"ready_s": ready_s, **timed_calls(call, n, device)}


def env(scale: str) -> dict:
    if scale == "full":
        return {"UPSCALE_WARMUP_SIZE": "256", "UPSCALE_TILE_SIZE": "256"}
    return {"UPSCALE_WARMUP_SIZE": "16", "UPSCALE_TILE_SIZE": "32", "UPSCALE_TILE_OVERLAP": "8"}


def extra(args) -> list:
    large = Spec(SPEC.title, SPEC.pipeline, MODEL, synth, lambda i, s: request(i, s, large=True), SPEC.naive, env)
    return [("runner, large input (tiled)", 90, runner_row(large, args, 1, 1, "large")),
            ("naive diffusers, large input (one call)", 120, naive_row(SPEC, args, __file__, "large"))]


SPEC = Spec("Upscale: synthetic SD x4 upscaler, 256x256 -> 1024x1024, 25 steps", "upscale", MODEL, synth, request,
            naive, env, extra, "benchmarks/results/upscale/gpu.md")


def main(argv: list[str] | None = None) -> dict:
    return run(SPEC, __file__, argv)


if __name__ == "__main__":
    main()
