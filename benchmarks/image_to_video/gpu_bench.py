"""GPU benchmark: image-to-video with a full-scale synthetic `stabilityai/stable-video-diffusion-img2vid-xt`
(25 frames of 1024x576, 25 steps), our runner beside the naive diffusers baseline in the same run.

    python benchmarks/image_to_video/gpu_bench.py [--requests 3] [--budget-s 420]
        [--out benchmarks/results/image_to_video/gpu.md]
    python benchmarks/image_to_video/gpu_bench.py --device cpu --scale tiny --requests 2 --in-process   # CPU

Sections (bench_common.py): synth at full scale (UNet 1.52B, temporal VAE, CLIP ViT-H image encoder; random
fp16); the runner at capacity 1 (cold load by phase including the warm-up video, warm VRAM, p50/p95 and peak
VRAM per video) and capacity 2; the naive baseline: plain diffusers
`StableVideoDiffusionPipeline.from_pretrained(variant="fp16").to(device)`, `decode_chunk_size=4` as upstream,
every frame a Pillow PNG + base64. Then the runner with I2V_DECODE_CHUNK_SIZE=8 (more VRAM, fewer VAE calls)
and with DEEPCACHE.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.image_to_image.bench_common import Spec, png_data_url, run, runner_row, timed_calls  # noqa: E402

MODEL = "stabilityai/stable-video-diffusion-img2vid-xt"


def size(scale: str) -> tuple[int, int]:
    return (1024, 576) if scale == "full" else (32, 32)


def request(i: int, scale: str) -> tuple[dict, bytes]:
    from runner_sdk.bench.workloads import sample_png

    width, height = size(scale)
    steps = 25 if scale == "full" else 2
    return ({"model_id": MODEL, "width": width, "height": height, "seed": i, "num_inference_steps": steps},
            sample_png(width, height))


def synth(model_id: str, model_dir: Path, scale: str) -> None:
    from runners.image_to_video.synth import synthesize

    synthesize(model_id, model_dir, scale)


def naive(model_dir: Path, n: int, device: str, scale: str, variant: str = "") -> dict:
    """Plain diffusers, as upstream's pipelines/image_to_video.py (decode_chunk_size 4)."""
    t0 = time.perf_counter()
    import io

    import torch
    from diffusers import StableVideoDiffusionPipeline
    from PIL import Image

    from runner_sdk.bench.workloads import sample_png
    from runner_sdk.resolve import resolve_snapshot

    cuda = device.startswith("cuda")
    pipe = StableVideoDiffusionPipeline.from_pretrained(
        str(resolve_snapshot(MODEL, model_dir)), torch_dtype=torch.float16 if cuda else torch.float32,
        variant="fp16" if cuda else None).to(device)
    pipe.set_progress_bar_config(disable=True)
    ready_s = time.perf_counter() - t0
    width, height = size(scale)
    image = Image.open(io.BytesIO(sample_png(width, height))).convert("RGB")
    steps = 25 if scale == "full" else 2

    def call(i: int) -> None:
        frames = pipe(image, height=height, width=width, num_inference_steps=steps, decode_chunk_size=4,
                      generator=torch.Generator(device).manual_seed(i)).frames[0]
        for frame in frames:
            png_data_url(frame)

    return {"ready_s": ready_s, **timed_calls(call, n, device)}


def env(scale: str) -> dict:
    width, height = size(scale)
    return {"I2V_WARMUP_SIZE": f"{width}x{height}"}


def extra(args) -> list:
    return [("runner, I2V_DECODE_CHUNK_SIZE=8", 90, runner_row(SPEC, args, 1, 1, "chunk8",
                                                                env={"I2V_DECODE_CHUNK_SIZE": "8"})),
            ("runner, DEEPCACHE", 90, runner_row(SPEC, args, 1, 1, "deepcache", env={"DEEPCACHE": "true"}))]


SPEC = Spec("Image-to-video: synthetic SVD-XT, 25 frames of 1024x576, 25 steps", "image-to-video", MODEL, synth,
            request, naive, env, extra, "benchmarks/results/image_to_video/gpu.md")


def main(argv: list[str] | None = None) -> dict:
    return run(SPEC, __file__, argv)


if __name__ == "__main__":
    main()
