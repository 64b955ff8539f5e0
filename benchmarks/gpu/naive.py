"""One pipeline's naive baseline (plain diffusers/transformers, as the stock runner does it), in a process of its
own so its memory is gone when it exits: the `naive` function of benchmarks/<pipeline>/gpu_bench.py, unchanged.

    python benchmarks/gpu/naive.py image-to-image --model-dir DIR --requests 3 --device cuda:0 --scale full

Prints one line `NAIVE_RESULT {json}` (the module's numbers: ready_s, p50_s, p95_s, per-second rate, peak
VRAM). Weights are synthesised into --model-dir first when the model is not there.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

# The pipelines whose gpu_bench.py has a `naive(model_dir, n, device, scale)` (diffusers: bench_common.py;
# transformers: image_to_text/harness.py). text-to-image's baseline is `naive(model_dir, n)`, CUDA only;
# the LLM's and audio-to-text's baselines run inside their own gpu_bench.py (sections.py runs those whole).
GENERIC = {"image-to-image", "upscale", "image-to-video", "image-to-text", "segment-anything-2", "text-to-speech"}


def load_bench(pipeline: str):
    """benchmarks/<pipeline>/gpu_bench.py as a module."""
    script = REPO / "benchmarks" / pipeline.replace("-", "_") / "gpu_bench.py"
    spec = importlib.util.spec_from_file_location(f"{pipeline.replace('-', '_')}_gpu_bench", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def baseline(pipeline: str, model_dir: Path, n: int, device: str, scale: str) -> dict:
    """The baseline's numbers for `n` requests.

    Raises:
        NotImplementedError: no naive baseline runs there (text-to-image's is CUDA only).
    """
    from runner_sdk.resolve import cache_folder

    bench = load_bench(pipeline)
    if pipeline == "text-to-image":
        if not device.startswith("cuda"):
            raise NotImplementedError("text-to-image's naive baseline (gpu_bench.naive_worker) is CUDA only")
        return bench.naive(model_dir, n)
    if pipeline not in GENERIC:
        raise NotImplementedError(f"{pipeline}: its baseline runs inside its own gpu_bench.py")
    spec = bench.SPEC
    if not cache_folder(model_dir, spec.model_id).exists():
        spec.synth(spec.model_id, model_dir, scale)
    return spec.naive(model_dir, n, device, scale)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipeline")
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=3)
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--scale", choices=["tiny", "full"], default="full")
    args = parser.parse_args(argv)
    result = baseline(args.pipeline, args.model_dir, args.requests, args.device, args.scale)
    print("NAIVE_RESULT " + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
