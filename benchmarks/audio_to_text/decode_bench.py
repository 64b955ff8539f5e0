"""CPU decode throughput of the audio-to-text runner: a 10-minute file per format, decoded to 16 kHz mono
float32 the way a request is (runners/audio_to_text/decode.py), beside the stock ai-runner loop in the same run.

    python benchmarks/audio_to_text/decode_bench.py [--minutes 10] [--repeats 3] [--out results.md]

The signal is speech-like (a gliding harmonic voice in syllable-length bursts, with noise), so the lossy
encoders work about as hard as on speech. Files are encoded once with PyAV, then each is decoded `repeats`
times; the best time is reported (the machine may be shared), with the median beside it.

Baseline ("stock"): ai-runner's loop (`pipelines/utils/audio.py`): every audio stream, each frame resampled
to s16 mono 16 kHz and taken as `resampled[0]`, concatenated, divided by 32768. It is opened by path, as
upstream does; ours reads through a nameless file object (format from content only).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from runner_sdk.hardware import cpu_name  # noqa: E402
from runners.audio_to_text.decode import decode_audio  # noqa: E402
from runners.audio_to_text.testaudio import FORMATS, encode  # noqa: E402

TARGET_X = 200.0


def speechlike(seconds: float, rate: int = 16_000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = 140 + 40 * np.sin(2 * np.pi * 0.3 * t) + 20 * np.sin(2 * np.pi * 1.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    syllables = (np.sin(2 * np.pi * 4 * t) > -0.2).astype(np.float32)  # ~4 syllables/s with gaps
    wave = 0.25 * voice * syllables + 0.02 * rng.standard_normal(len(t))
    return (wave / np.abs(wave).max() * 0.8).astype(np.float32)


def stock_decode(path: Path) -> np.ndarray:
    """ai-runner's decoder, with its bugs (Q9: resampled[0] on an empty list raises IndexError)."""
    container = av.open(str(path))
    resampler = av.AudioResampler(format="s16", layout="mono", rate=16_000)
    out = []
    try:
        for stream in container.streams.audio:
            for frame in container.decode(stream):
                out.append(resampler.resample(frame)[0].to_ndarray())
    finally:
        container.close()
    return (np.concatenate(out, axis=1).reshape(-1).astype(np.float32)) / 32768.0


def timed(fn, path: Path, repeats: int) -> tuple[list[float], list[float], object]:
    """Wall seconds and CPU seconds (this process) per run. On a shared machine the CPU time is the figure
    that does not depend on what else runs; the wall time is what a request waits."""
    walls, cpus, result, error = [], [], None, None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            result = fn(path)
        except Exception as exc:  # the stock loop fails on some files; report it, keep going
            error = f"{type(exc).__name__}: {exc}"
            break
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return walls, cpus, (error if error else result)


def machine() -> str:
    return (f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}, PyAV {av.__version__}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--out", type=Path, default=None, help="write a Markdown report here")
    args = ap.parse_args()

    seconds = args.minutes * 60
    wave = speechlike(seconds)
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="decode-bench-") as tmp:
        for name in args.formats.split(","):
            path = encode(wave, 16_000, name, Path(tmp) / name)
            size_mb = path.stat().st_size / 1e6
            ours_t, ours_cpu, ours = timed(lambda p: decode_audio(p).samples, path, args.repeats)
            stock_t, stock_cpu, stock = timed(stock_decode, path, args.repeats)
            row = {"format": name, "codec": FORMATS[name].codec, "mb": size_mb, "ours": ours_t,
                   "ours_cpu": ours_cpu, "stock_cpu": stock_cpu,
                   "ours_dur": len(ours) / 16_000 if isinstance(ours, np.ndarray) else None,
                   "stock": stock_t, "stock_dur": len(stock) / 16_000 if isinstance(stock, np.ndarray) else None,
                   "stock_error": stock if isinstance(stock, str) else None}
            rows.append(row)
            best = min(ours_t)
            print(f"{name:14s} {size_mb:7.1f} MB  ours {best:6.3f} s = {seconds / best:6.0f}x real time "
                  f"(CPU {min(ours_cpu):6.3f} s = {seconds / min(ours_cpu):6.0f}x)"
                  + (f"  stock {min(stock_t):6.3f} s = {seconds / min(stock_t):6.0f}x" if stock_t else
                     f"  stock failed: {row['stock_error']}"), flush=True)
    load_after = os.getloadavg()

    lines = [
        "# Audio decode throughput (CPU)",
        "",
        f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- Machine: {machine()}",
        f"- Load average (1/5/15 min) before: {load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, "
        f"after: {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f} (a shared machine: other jobs ran "
        "beside this one, so these are lower bounds)",
        f"- Input: {args.minutes:g} minutes of a speech-like synthetic signal per format, encoded with PyAV "
        "(runners/audio_to_text/testaudio.py); decoded to 16 kHz mono float32",
        f"- Each decode run {args.repeats} times; best (median) wall seconds, and the best CPU seconds of this "
        f"process (decoding is single-threaded). Target: at least {TARGET_X:.0f}x real time.",
        "- Command: `python benchmarks/audio_to_text/decode_bench.py "
        f"--minutes {args.minutes:g} --repeats {args.repeats} --out <this file>`",
        "",
        "| Format | Codec | Size (MB) | Ours: wall s | Ours: x real time (wall) | Ours: CPU s | Ours: x real time "
        "(CPU) | Decoded s | Stock loop: wall s | Stock: CPU s | Stock decoded s | Stock CPU / ours CPU |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        o, oc = min(r["ours"]), min(r["ours_cpu"])
        if r["stock"]:
            s, sc = min(r["stock"]), min(r["stock_cpu"])
            stock_cells = (f"{s:.3f} ({statistics.median(r['stock']):.3f}) | {sc:.3f} | {r['stock_dur']:.3f} | "
                           f"{sc / oc:.2f}x")
        else:
            stock_cells = f"failed: `{r['stock_error']}` | - | - | -"
        lines.append(f"| {r['format']} | {r['codec']} | {r['mb']:.1f} | {o:.3f} ({statistics.median(r['ours']):.3f}) "
                     f"| {seconds / o:.0f}x | {oc:.3f} | {seconds / oc:.0f}x | {r['ours_dur']:.3f} | {stock_cells} |")
    worst_wall = min(seconds / min(r["ours"]) for r in rows)
    worst_cpu = min(seconds / min(r["ours_cpu"]) for r in rows)
    lines += ["", f"Slowest format: {worst_wall:.0f}x real time by wall clock, {worst_cpu:.0f}x by CPU time "
              f"(target {TARGET_X:.0f}x: {'met' if worst_wall >= TARGET_X else 'not met'} by wall clock, "
              f"{'met' if worst_cpu >= TARGET_X else 'not met'} by CPU time on one core).", ""]
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
