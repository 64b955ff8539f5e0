"""PNG encoding of a 1024x1024 RGB image: the runner's encoder against Pillow's default, same run.

    python benchmarks/text_to_image/png_bench.py [--repeat 15] [--out benchmarks/results/text_to_image/cpu-png.md]

Three inputs, because deflate's speed depends on content: "photo-like" (smooth gradients plus sensor-like
noise, what a diffusion model's output resembles to a compressor), "flat" (gradients only: best case) and
"noise" (uniform random bytes: worst case). Variants run interleaved, each timed `repeat` times; the table
gives medians. Every output is decoded and compared to the input pixels (lossless check).
"""

from __future__ import annotations

import argparse
import base64
import io
import platform
import statistics
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from runners.text_to_image.encode import encode_png  # noqa: E402


def images(size: int = 1024) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size]
    flat = np.stack([(x / 4) % 256, (y / 4) % 256, ((x + y) / 8) % 256], -1).astype(np.float32)
    photo = (flat + rng.normal(0, 6, flat.shape)).clip(0, 255).astype(np.uint8)
    return {"photo-like": photo, "flat": flat.astype(np.uint8),
            "noise": rng.integers(0, 256, (size, size, 3), dtype=np.uint8)}


def pillow(pixels: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", **kw)
    return buf.getvalue()


VARIANTS = {
    "Pillow default (level 6)": lambda a: pillow(a),
    "Pillow level 1": lambda a: pillow(a, compress_level=1),
    "runner: Pillow level 1 + Z_RLE": lambda a: encode_png(a),
    "Pillow level 0 (stored)": lambda a: pillow(a, compress_level=0),
}


def run(repeat: int) -> list[dict]:
    rows = []
    for name, pixels in images().items():
        times: dict[str, list[float]] = {v: [] for v in VARIANTS}
        sizes: dict[str, int] = {}
        b64: list[float] = []
        for _ in range(repeat):
            for variant, fn in VARIANTS.items():  # interleaved: load drift hits every variant alike
                t0 = time.perf_counter()
                data = fn(pixels)
                times[variant].append(time.perf_counter() - t0)
                sizes[variant] = len(data)
            t0 = time.perf_counter()
            base64.b64encode(data)
            b64.append(time.perf_counter() - t0)
        for variant, fn in VARIANTS.items():
            decoded = np.asarray(Image.open(io.BytesIO(fn(pixels))))
            assert np.array_equal(decoded, pixels), variant
        base = statistics.median(times["Pillow default (level 6)"])
        for variant in VARIANTS:
            med = statistics.median(times[variant])
            rows.append({"image": name, "variant": variant, "ms": med * 1000, "speedup": base / med,
                         "bytes": sizes[variant]})
        rows.append({"image": name, "variant": "(base64 of the last output)", "ms": statistics.median(b64) * 1000,
                     "speedup": None, "bytes": None})
    return rows


def markdown(rows: list[dict], repeat: int) -> str:
    lines = [
        "# PNG encoding, 1024x1024 RGB (CPU)",
        "",
        f"Machine: {platform.machine()} CPU, {_cpus()} cores, no GPU ({platform.platform()}); "
        f"Python {platform.python_version()}, Pillow {Image.__version__}, zlib {zlib.ZLIB_VERSION}.",
        f"Command: `python benchmarks/text_to_image/png_bench.py --repeat {repeat}`; medians of {repeat} "
        "interleaved runs; every output decoded and checked lossless.",
        "",
        "| image | encoder | median ms | vs Pillow default | PNG bytes |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        speed = f"{r['speedup']:.2f}x" if r["speedup"] is not None else ""
        size = f"{r['bytes']:,}" if r["bytes"] is not None else ""
        lines.append(f"| {r['image']} | {r['variant']} | {r['ms']:.1f} | {speed} | {size} |")
    return "\n".join(lines) + "\n"


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--out", type=Path, default=None, help="write the markdown table here")
    args = parser.parse_args()
    text = markdown(run(args.repeat), args.repeat)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
