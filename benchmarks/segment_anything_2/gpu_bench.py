"""GPU benchmark: segment-anything-2 with full-scale synthetic SAM 2 Hiera-large (216.9 M image-model
parameters), a 1024 x 768 PNG and one point prompt per request, our runner beside the naive transformers
baseline in the same run.

    python benchmarks/segment_anything_2/gpu_bench.py [--requests 10] [--budget-s 420]
        [--out benchmarks/results/segment_anything_2/gpu.md]
    python benchmarks/segment_anything_2/gpu_bench.py --device cpu --scale tiny --requests 2 --in-process   # CPU

Sections (benchmarks/image_to_text/harness.py): synth; the runner at capacity 1 (cold load by phase, warm
VRAM, p50/p95 including the multi-megabyte printed response, peak VRAM) and at capacity 2 with two clients;
the naive baseline: `Sam2Model.from_pretrained(...).to(device)` in fp32 without TF32, one forward from pixel
values per request, masks upsampled and the three fields printed as upstream does (`str(tensor.tolist())`).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.image_to_text.harness import Spec, run, timed_calls  # noqa: E402

MODEL = "facebook/sam2-hiera-large"


def size(scale: str) -> tuple[int, int]:
    return (1024, 768) if scale == "full" else (48, 32)


def request(i: int, scale: str) -> dict:
    """httpx keyword arguments of request `i` (the bench workload's, at the scale's size)."""
    from runner_sdk.bench.workloads import SegmentAnything2

    w, h = size(scale)
    return SegmentAnything2("segment-anything-2", width=w, height=h).request(i)


def synth(model_id: str, model_dir: Path, scale: str) -> None:
    """Synthetic weights for `model_id` at `scale` in `model_dir`."""
    from runners.segment_anything_2.synth import synthesize

    synthesize(model_id, model_dir, scale)


def naive(model_dir: Path, n: int, device: str, scale: str) -> dict:
    """A straightforward transformers SAM 2: fp32, embedding inside the forward, upstream's printing."""
    import io
    import time

    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from transformers import Sam2Model

    from runner_sdk.bench.workloads import sample_png
    from runner_sdk.resolve import resolve_snapshot

    t0 = time.perf_counter()
    model = Sam2Model.from_pretrained(resolve_snapshot(MODEL, model_dir), use_safetensors=True).to(device).eval()
    ready_s = time.perf_counter() - t0
    w, h = size(scale)
    data = sample_png(w, h)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def call(i: int) -> None:
        image = Image.open(io.BytesIO(data)).convert("RGB").resize((1024, 1024))
        pixels = (torch.from_numpy(np.asarray(image, np.float32) / 255).permute(2, 0, 1)[None] - mean) / std
        point = torch.tensor([[[[(37 * i % w) * 1024 / w, (53 * i % h) * 1024 / h]]]])
        with torch.inference_mode():
            out = model(pixel_values=pixels.to(device), input_points=point.to(device),
                        input_labels=torch.ones(1, 1, 1, dtype=torch.int, device=device))
            low = out.pred_masks[0, 0]
            masks = F.interpolate(low[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        for t in (masks, out.iou_scores[0, 0], low.clamp(-32, 32)):
            str(t.float().cpu().numpy().tolist())

    return {"ready_s": ready_s, **timed_calls(call, n, device)}


SPEC = Spec("Segment-anything-2: synthetic SAM 2 Hiera-large, 1024x768 input, one point", "segment-anything-2",
            MODEL, synth, request, naive, lambda scale: {}, "benchmarks/results/segment_anything_2/gpu.md")


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark (arguments as in the module docstring); returns the numbers, writes the report."""
    return run(SPEC, argv)


if __name__ == "__main__":
    main()
