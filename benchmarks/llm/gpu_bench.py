"""LLM runner on one GPU: full-scale synthetic Llama 3.1 8B Instruct, one script.

    python benchmarks/llm/gpu_bench.py [--out benchmarks/results/llm/gpu-<card>.md]
    python benchmarks/llm/gpu_bench.py --scale tiny --device cpu --new-tokens 16   # dry run of the script

Budget: under 8 minutes on one H100 (it stops starting new measurements at --deadline-s, 420 s by default,
and says what it skipped). Steps:

1. Synthesize Llama 3.1 8B at full scale (32 layers, hidden 4096, 8 KV heads, vocabulary 128256, llama3 rope
   scaling; 8.03 B parameters, 16.1 GB bf16) into the HF cache layout under --model-dir, unless it is there.
2. For each variant of the runner, loaded in this process through `LLMRunner.setup` (the serving code path):
   cold load by phase (the weight files are first evicted from the page cache with posix_fadvise DONTNEED,
   which is advisory), warm VRAM after load; then, through the runner's engine (the code every request
   runs, without HTTP): time to first token for a 128-token prompt, single-stream decode tokens/s over 256
   new tokens, and aggregate tokens/s at 1, 4 and 8 concurrent streams, each with its peak VRAM.
   Variants: bf16 (default engine: dynamic cache, step-level batching), bf16 + LLM_COMPILE (static cache,
   CUDA graphs; MAX_MODEL_LEN 1024 because the static cache attends its whole length each step),
   QUANTIZE=int4 and QUANTIZE=int8 (torchao; single stream only; skipped with the reason when torchao is
   missing).
3. The baseline in the same run, on the bf16 weights: plain transformers `generate` (dynamic cache, default
   attention, greedy), single stream and batches of 4 and 8 equal-length prompts.
4. Each decode rate also as a fraction of the memory-bandwidth limit: HBM bytes/s divided by the weight bytes
   (every decode step reads every weight once; H100 SXM: 3.35 TB/s / 16.06 GB = ~209 tokens/s).

Random weights rarely emit an end-of-reply token, but the end-of-reply ids are disabled anyway (engine and
baseline) so every stream generates exactly --new-tokens tokens. Greedy decoding throughout.
Targets on an H100 (issue 5): >= 170 tokens/s single-stream bf16, time to first token <= 30 ms, cold load
<= 5 s, int4 peak VRAM <= 6.5 GB. Timings use torch.cuda.synchronize(); peaks use reset_peak_memory_stats()
before each measured run.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from runner_sdk import Job, RunnerSettings  # noqa: E402
from runner_sdk.runner import LoadContext  # noqa: E402
from runners.llm.runner import LLMRunner  # noqa: E402
from runners.llm.sampling import SamplingParams  # noqa: E402
from runners.llm.synth import DEFAULT_MODEL_ID, synthesize  # noqa: E402

# Peak HBM bandwidth by device name (vendor datasheets), bytes/s.
HBM_BYTES_PER_S = [
    ("H200", 4.8e12), ("H100 NVL", 3.9e12), ("H100 PCIe", 2.0e12), ("H100", 3.35e12),
    ("A100-SXM4-80GB", 2.039e12), ("A100 80GB PCIe", 1.935e12), ("A100", 1.555e12), ("L40S", 0.864e12),
    ("RTX 4090", 1.008e12), ("A10", 0.6e12),
]
GB = 1e9


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def peak_gb(device: str) -> float | None:
    return round(torch.cuda.max_memory_allocated() / GB, 2) if device.startswith("cuda") else None


def allocated_gb(device: str) -> float | None:
    return round(torch.cuda.memory_allocated() / GB, 2) if device.startswith("cuda") else None


def bandwidth(device: str, override: float | None) -> tuple[str, float | None]:
    if override:
        return "given", override * GB
    if not device.startswith("cuda"):
        return "cpu", None
    name = torch.cuda.get_device_name()
    for key, value in HBM_BYTES_PER_S:
        if key in name:
            return name, value
    return name, None


def evict_page_cache(folder: Path) -> None:
    """Ask the kernel to drop the weight files' pages (advisory), so the load reads from disk."""
    for path in folder.rglob("*.safetensors"):
        with contextlib.suppress(OSError, AttributeError):
            fd = os.open(path.resolve(), os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


@contextlib.contextmanager
def env(values: dict[str, str]):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load(args, variant_env: dict[str, str], capacity: int) -> tuple[LLMRunner, dict]:
    settings = RunnerSettings(pipeline="llm", model_id=DEFAULT_MODEL_ID, model_dir=args.model_dir,
                              device=args.device, capacity=capacity, queue_size=0)
    evict_page_cache(Path(args.model_dir))
    reset_peak(args.device)
    t0 = time.perf_counter()
    with env(variant_env):
        runner = LLMRunner(settings, args.device)
        ctx = LoadContext(settings, args.device)
        runner.setup(ctx)
        sync(args.device)
        with ctx.phase("warmup"):
            runner.warmup()
            sync(args.device)
    total = time.perf_counter() - t0
    runner.engine.eos_ids = set()  # random weights: every stream runs to max_tokens
    return runner, {
        "phases_s": {k: round(v, 3) for k, v in ctx.timer.seconds.items()}, "load_s": round(total, 3),
        "warm_vram_gb": allocated_gb(args.device), "load_peak_vram_gb": peak_gb(args.device),
        "notes": ctx.notes, "optimisations": ctx.applied, "dtype": ctx.dtype,
    }


def prompt(args, i: int) -> list[int]:
    g = torch.Generator().manual_seed(1000 + i)
    return torch.randint(0, 700, (args.prompt_tokens,), generator=g).tolist()  # regular (non-special) ids


def run_streams(runner: LLMRunner, args, n: int) -> dict:
    """n sequences submitted at once; returns TTFT (first sequence), decode rate and aggregate rate."""
    engine = runner.engine
    sync(args.device)
    reset_peak(args.device)
    t0 = time.perf_counter()
    seqs = [engine.submit(prompt(args, i), args.new_tokens, SamplingParams(temperature=0), Job())
            for i in range(n)]
    first_at, done_at, counts = [None] * n, [None] * n, [0] * n
    for i, seq in enumerate(seqs):
        while True:
            kind, _ = seq.events.get()
            now = time.perf_counter()
            if kind == "token":
                counts[i] += 1
                if first_at[i] is None:
                    first_at[i] = now
            elif kind == "done":
                done_at[i] = now
                break
            else:
                raise RuntimeError(f"stream {i}: {kind}")
    sync(args.device)
    wall = time.perf_counter() - t0
    total = sum(counts)
    out = {"streams": n, "tokens": total, "wall_s": round(wall, 3), "aggregate_tok_s": round(total / wall, 1),
           "peak_vram_gb": peak_gb(args.device)}
    if n == 1:
        ttft = first_at[0] - t0
        out["ttft_ms"] = round(ttft * 1000, 1)
        out["decode_tok_s"] = round((counts[0] - 1) / (done_at[0] - first_at[0]), 1)
    return out


def baseline(model, args, n: int) -> dict:
    """Plain transformers generate: dynamic cache, default attention, greedy, n equal-length prompts."""
    ids = torch.tensor([prompt(args, i) for i in range(n)], device=args.device)
    # min_new_tokens = max_new_tokens: end-of-reply ids are suppressed, every row runs to the end.
    kwargs = dict(do_sample=False, pad_token_id=0)
    out = {"streams": n}
    with torch.inference_mode():
        if n == 1:
            model.generate(ids, max_new_tokens=1, min_new_tokens=1, **kwargs)  # warm
            sync(args.device)
            t0 = time.perf_counter()
            model.generate(ids, max_new_tokens=1, min_new_tokens=1, **kwargs)
            sync(args.device)
            out["ttft_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        reset_peak(args.device)
        sync(args.device)
        t0 = time.perf_counter()
        gen = model.generate(ids, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, **kwargs)
        sync(args.device)
        wall = time.perf_counter() - t0
    tokens = (gen.shape[1] - ids.shape[1]) * n
    out.update(tokens=tokens, wall_s=round(wall, 3), aggregate_tok_s=round(tokens / wall, 1),
               peak_vram_gb=peak_gb(args.device))
    if n == 1:  # decode rate without the prefill
        out["decode_tok_s"] = round((args.new_tokens - 1) / (wall - out["ttft_ms"] / 1000), 1)
    return out


def weight_bytes(model) -> int:
    """Bytes of the parameters as stored (tied weights once; a quantised tensor subclass counts its inner
    packed tensors and scales)."""
    seen, total = set(), 0
    for p in model.parameters():
        t = p.data if hasattr(p, "data") else p
        key = id(t) if hasattr(t, "__tensor_flatten__") else t.data_ptr()
        if key in seen:
            continue
        seen.add(key)
        if hasattr(t, "__tensor_flatten__") and type(t) is not torch.Tensor:
            names, _ = t.__tensor_flatten__()
            total += sum(getattr(t, n).numel() * getattr(t, n).element_size() for n in names)
        else:
            total += t.numel() * t.element_size()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path(os.environ.get(
        "RUNNER_BENCH_SYNTH_DIR", "/tmp/runner-bench-models")))
    parser.add_argument("--scale", choices=["tiny", "full"], default="full")
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--streams", default="1,4,8")
    parser.add_argument("--variants", default="bf16,compile,int4,int8")
    parser.add_argument("--hbm-gbps", type=float, default=None, help="override the HBM bandwidth (GB/s)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per measurement; the median is kept")
    parser.add_argument("--deadline-s", type=float, default=420.0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--note", default="", help="a line about the machine or the run, printed in the report")
    args = parser.parse_args()
    started = time.perf_counter()
    streams = [int(x) for x in args.streams.split(",")]
    capacity = max(streams)
    device_name, hbm = bandwidth(args.device, args.hbm_gbps)
    report: dict = {"machine": {"device": device_name, "host": platform.node(), "cpu": platform.processor(),
                                "torch": torch.__version__, "hbm_bytes_per_s": hbm},
                    "config": vars(args) | {"model_dir": str(args.model_dir), "out": str(args.out)},
                    "variants": {}, "baseline": {}, "skipped": []}

    t0 = time.perf_counter()
    snapshot = synthesize(DEFAULT_MODEL_ID, args.model_dir, args.scale)
    report["synth_s"] = round(time.perf_counter() - t0, 1)
    report["snapshot"] = str(snapshot)

    variant_env = {
        "bf16": {},
        "compile": {"LLM_COMPILE": "1", "MAX_MODEL_LEN": "1024"},
        "int8": {"QUANTIZE": "int8"},
        "int4": {"QUANTIZE": "int4"},
    }
    for name in args.variants.split(","):
        if time.perf_counter() - started > args.deadline_s:
            report["skipped"].append(f"{name}: deadline")
            continue
        if name in ("int8", "int4", "compile") and not args.device.startswith("cuda"):
            report["skipped"].append(f"{name}: CUDA only")
            continue
        if name in ("int8", "int4") and importlib_missing("torchao"):
            report["skipped"].append(f"{name}: torchao not installed")
            continue
        print(f"[{time.perf_counter() - started:6.1f}s] loading {name}", flush=True)
        try:
            runner, loaded = load(args, variant_env[name], capacity)
        except Exception as exc:  # report and go on with the other variants
            report["skipped"].append(f"{name}: load failed: {exc!r}")
            continue
        result = {"load": loaded, "weight_bytes": weight_bytes(runner.model), "runs": []}
        # Quantised variants: single-stream speed and VRAM (the question); batching is the same code.
        for n in streams if name in ("bf16", "compile") else [1]:
            if time.perf_counter() - started > args.deadline_s:
                report["skipped"].append(f"{name} x{n}: deadline")
                continue
            print(f"[{time.perf_counter() - started:6.1f}s] {name}: {n} stream(s)", flush=True)
            runs = [run_streams(runner, args, n) for _ in range(args.repeats)]
            result["runs"].append(sorted(runs, key=lambda r: r["aggregate_tok_s"])[len(runs) // 2])  # median
        report["variants"][name] = result
        if name == "bf16":
            model = runner.model
            runner.engine.close()
            report["bf16_weight_bytes"] = result["weight_bytes"]
            for n in streams:
                if time.perf_counter() - started > args.deadline_s:
                    report["skipped"].append(f"baseline x{n}: deadline")
                    continue
                print(f"[{time.perf_counter() - started:6.1f}s] baseline generate: {n} stream(s)", flush=True)
                report["baseline"][str(n)] = baseline(model, args, n)
            del model
        runner.engine.close()
        runner.engine.thread.join(10)
        del runner
        gc.collect()
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
        write(report, args)
    report["total_s"] = round(time.perf_counter() - started, 1)
    write(report, args)
    print(render(report))


def importlib_missing(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None


def limit_fraction(report: dict, tok_s: float | None, weight: int | None) -> str:
    hbm = report["machine"]["hbm_bytes_per_s"]
    if not (hbm and tok_s and weight):
        return "n/a"
    limit = hbm / weight
    return f"{tok_s / limit:.0%} of {limit:.0f}"


def render(report: dict) -> str:
    m = report["machine"]
    lines = [f"# LLM runner benchmark: {m['device']}", "",
             f"torch {m['torch']}; host {m['host']}; synth {report.get('synth_s')} s; "
             f"total {report.get('total_s')} s; HBM {m['hbm_bytes_per_s'] and m['hbm_bytes_per_s'] / 1e12} TB/s",
             "", report["config"].get("note") or "", "", "| variant | load s (phases) | warm VRAM GB | streams | TTFT ms | decode tok/s | aggregate tok/s "
             "| peak VRAM GB | vs bandwidth limit |", "|---|---|---|---|---|---|---|---|---|"]
    for name, v in report["variants"].items():
        phases = ", ".join(f"{k} {s}" for k, s in v["load"]["phases_s"].items())
        for run in v["runs"]:
            lines.append(
                f"| {name} ({v['load']['dtype']}) | {v['load']['load_s']} ({phases}) | {v['load']['warm_vram_gb']} | {run['streams']} | "
                f"{run.get('ttft_ms', '')} | {run.get('decode_tok_s', '')} | {run['aggregate_tok_s']} | "
                f"{run['peak_vram_gb']} | {limit_fraction(report, run.get('decode_tok_s'), v['weight_bytes'])} |")
    for n, run in report["baseline"].items():
        lines.append(f"| transformers generate (baseline) | | | {n} | {run.get('ttft_ms', '')} | "
                     f"{run.get('decode_tok_s', '')} | {run['aggregate_tok_s']} | {run['peak_vram_gb']} | "
                     f"{limit_fraction(report, run.get('decode_tok_s'), report.get('bf16_weight_bytes'))} |")
    if report["skipped"]:
        lines += ["", "Skipped: " + "; ".join(report["skipped"])]
    for name, v in report["variants"].items():
        if v["load"]["notes"] or v["load"]["optimisations"]:
            lines.append(f"\n{name}: optimisations {v['load']['optimisations']}; notes {v['load']['notes']}")
    return "\n".join(lines) + "\n"


def write(report: dict, args) -> None:
    if args.out is None:
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    args.out.write_text(render(report))


if __name__ == "__main__":
    main()
