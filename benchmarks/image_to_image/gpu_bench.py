"""GPU benchmark: image-to-image with full-scale synthetic SDXL-Lightning-4step, 1024x1024 input, our runner
beside the naive diffusers baseline in the same run.

    python benchmarks/image_to_image/gpu_bench.py [--requests 5] [--budget-s 420]
        [--out benchmarks/results/image_to_image/gpu.md]
    python benchmarks/image_to_image/gpu_bench.py --device cpu --scale tiny --requests 2 --in-process   # CPU

Sections (bench_common.py): synth at full scale (real SDXL shapes, random fp16 weights; the base's fp16
files and the 4-step Lightning UNet file); the runner at capacity 1 (cold load to IDLE by phase, warm VRAM,
p50/p95 of a 1024x1024 input at strength 0.8 = 3 of Lightning's 4 steps, peak VRAM) and capacity 2 (two
clients); the naive baseline: plain diffusers `StableDiffusionXLImg2ImgPipeline` with the Lightning UNet and
trailing Euler, `from_pretrained(variant="fp16").to(device)`, a call per request, Pillow's default PNG. The
same work as the runner; upstream's Lightning branch loads the text-to-image class instead and ignores the
input (Q34), which costs one more step and no VAE encode. Then DEEPCACHE on a generic SDXL id (25 steps,
guidance 5), off and on.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.image_to_image.bench_common import Spec, png_data_url, run, runner_row, timed_calls  # noqa: E402

MODEL = "ByteDance/SDXL-Lightning-4step"
GENERIC = "acme/sdxl-generic-bench"
PROMPT = "a watercolour painting of a lighthouse on a cliff at dusk"


def side(scale: str) -> int:
    return 1024 if scale == "full" else 64


def request(i: int, scale: str, **extra) -> tuple[dict, bytes]:
    from runner_sdk.bench.workloads import sample_png

    return {"prompt": PROMPT, "model_id": MODEL, "seed": i, "strength": 0.8, **extra}, sample_png(side(scale),
                                                                                                   side(scale))


def synth(model_id: str, model_dir: Path, scale: str) -> None:
    from runners.image_to_image.synth import synthesize

    synthesize(model_id, model_dir, scale)
    if scale == "tiny":  # the DEEPCACHE sections' generic SDXL (full scale: symlinks, `generic_id`)
        synthesize(GENERIC, model_dir, scale, safety_checker=False)


def naive(model_dir: Path, n: int, device: str, scale: str, variant: str = "") -> dict:
    """Plain diffusers SDXL img2img with the Lightning UNet: what a straightforward runner would do."""
    t0 = time.perf_counter()
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline, UNet2DConditionModel
    from PIL import Image
    from safetensors.torch import load_file

    from runner_sdk.resolve import resolve_snapshot

    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    base = resolve_snapshot("stabilityai/stable-diffusion-xl-base-1.0", model_dir)
    lightning = resolve_snapshot("ByteDance/SDXL-Lightning", model_dir)
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(base / "unet"))).to(device, dtype)
    unet.load_state_dict(load_file(str(lightning / "sdxl_lightning_4step_unet.safetensors"), device=device))
    pipe = StableDiffusionXLImg2ImgPipeline.from_pretrained(str(base), unet=unet, torch_dtype=dtype,
                                                            variant="fp16").to(device)
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
    pipe.set_progress_bar_config(disable=True)
    ready_s = time.perf_counter() - t0
    import io

    from runner_sdk.bench.workloads import sample_png

    image = Image.open(io.BytesIO(sample_png(side(scale), side(scale)))).convert("RGB")

    def call(i: int) -> None:
        gen = torch.Generator(device).manual_seed(i)
        out = pipe(prompt=PROMPT, image=image, strength=0.8, guidance_scale=0.0, num_inference_steps=4,
                   generator=gen).images[0]
        png_data_url(out)

    return {"ready_s": ready_s, **timed_calls(call, n, device)}


def generic_id(args) -> str:
    """The DEEPCACHE sections' generic SDXL: at tiny scale a synthetic repo; at full scale the base with the
    Lightning weights as its UNet, served from a local folder of symlinks (as the text-to-image benchmark)."""
    if args.scale == "tiny":
        return GENERIC
    from benchmarks.text_to_image.gpu_bench import generic_folder
    from runner_sdk.resolve import resolve_snapshot

    return str(generic_folder(args.model_dir, resolve_snapshot("stabilityai/stable-diffusion-xl-base-1.0",
                                                               args.model_dir)))


def extra(args) -> list:
    steps = {"num_inference_steps": 25, "guidance_scale": 5.0}
    model = generic_id(args)
    generic = Spec(SPEC.title, SPEC.pipeline, model, SPEC.synth, lambda i, s: request(i, s, model_id=model, **steps),
                   SPEC.naive, SPEC.env)
    return [("generic SDXL, 25 steps CFG 5, DEEPCACHE off", 60, runner_row(generic, args, 1, 1, "generic")),
            ("generic SDXL, 25 steps CFG 5, DEEPCACHE on", 60,
             runner_row(generic, args, 1, 1, "deepcache", env={"DEEPCACHE": "true"}))]


def env(scale: str) -> dict:
    s = side(scale)
    return {"T2I_WARMUP_SIZE": f"{s}x{s}", "T2I_MAX_PIXELS": str(s * s * 4)}


SPEC = Spec("Image-to-image: synthetic SDXL-Lightning-4step, 1024x1024 input, strength 0.8", "image-to-image",
            MODEL, synth, request, naive, env, extra, "benchmarks/results/image_to_image/gpu.md")


def main(argv: list[str] | None = None) -> dict:
    return run(SPEC, __file__, argv)


if __name__ == "__main__":
    main()
