"""Where a text-to-image request's time goes, on a real server (CPU, tiny synthetic SDXL-Lightning-4step).

    python benchmarks/text_to_image/request_split.py [--requests 8] [--sizes 512,1024]
        [--out benchmarks/results/text_to_image/cpu-request-split.md]

Stages come from the runner's Server-Timing header: queue (waiting for a slot), denoise (text encoders and
the UNet loop), vae (decode), safety (the NSFW flag), encode (PNG + base64), encode_json; "http" is what the
client saw beyond the server's total (parsing, the socket, the response body). Sequential requests show
the per-request split; a second pass sends two requests at once to a capacity-1 runner so queue time shows.

The tiny model's networks are toy-sized, so denoise and vae are not SDXL's costs; encode, JSON and HTTP
are the real per-image costs at that resolution (they do not depend on the model).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

MODEL = "ByteDance/SDXL-Lightning-4step"
STAGES = ("queue", "denoise", "vae", "safety", "encode", "encode_json", "http", "client total")


def server_timing(header: str) -> dict[str, float]:
    out = {}
    for part in header.split(","):
        name, _, dur = part.strip().partition(";dur=")
        out[name] = float(dur)
    return out


def one(url: str, size: int, seed: int) -> dict[str, float]:
    t0 = time.perf_counter()
    r = httpx.post(url + "/text-to-image", json={"prompt": "a lighthouse at dusk", "width": size, "height": size,
                                                 "seed": seed}, timeout=600)
    wall = (time.perf_counter() - t0) * 1000
    r.raise_for_status()
    timing = server_timing(r.headers["server-timing"])
    timing["http"] = wall - timing["total"]
    timing["client total"] = wall
    return timing


def table(title: str, runs: list[dict[str, float]]) -> list[str]:
    lines = [f"### {title}", "", "| stage | median ms | share of client total |", "|---|---:|---:|"]
    total = statistics.median(r["client total"] for r in runs)
    for stage in STAGES:
        values = [r.get(stage, 0.0) for r in runs]
        med = statistics.median(values)
        lines.append(f"| {stage} | {med:.1f} | {100 * med / total:.1f}% |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--sizes", default="512,1024")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["T2I_WARMUP_SIZE"] = f"{sizes[0]}x{sizes[0]}"
    os.environ["T2I_MAX_PIXELS"] = str(max(sizes) ** 2)
    from runner_sdk.settings import RunnerSettings
    from runner_sdk.testing import RunningServer
    from runners.text_to_image.runner import TextToImageRunner
    from runners.text_to_image.synth import synthesize

    lines = [
        "# Text-to-image request split (CPU, tiny synthetic SDXL-Lightning-4step)",
        "",
        f"Machine: {platform.machine()} CPU, {len(os.sched_getaffinity(0))} cores, no GPU; torch "
        f"{__import__('torch').__version__}. Command: `python benchmarks/text_to_image/request_split.py "
        f"--requests {args.requests} --sizes {args.sizes}`. Medians over {args.requests} requests after the "
        "runner's own warm-up. Stage names are the Server-Timing entries; http = client wall time minus the "
        "server's total.",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        synthesize(MODEL, Path(tmp), "tiny")
        settings = RunnerSettings(pipeline="text-to-image", model_id=MODEL, model_dir=Path(tmp), device="cpu",
                                  capacity=1, queue_size=4)
        with RunningServer(TextToImageRunner, settings, ready_timeout=600) as srv:
            for size in sizes:
                one(srv.url, size, 0)  # first request at this size (allocator, caches)
                runs = [one(srv.url, size, i) for i in range(args.requests)]
                lines += table(f"{size}x{size}, one request at a time", runs)
            size = sizes[0]
            pairs: list[dict[str, float]] = []
            for i in range(max(1, args.requests // 2)):
                results: list[dict[str, float]] = []
                threads = [threading.Thread(target=lambda s=s, out=results: out.append(one(srv.url, size, s)))
                           for s in (2 * i, 2 * i + 1)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                pairs += results
            lines += table(f"{size}x{size}, two requests at once, capacity 1 (the second one queues)", pairs)
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
