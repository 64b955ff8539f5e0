"""LLM runner on one GPU: full-scale synthetic Llama 3.1 8B Instruct, one script.

    python benchmarks/llm/gpu_bench.py [--out benchmarks/results/llm/gpu-<card>.md]
    python benchmarks/llm/gpu_bench.py --scale tiny --device cpu --new-tokens 16   # dry run of the script

Budget: under 8 minutes on one H100 (it stops starting new measurements at --deadline-s, 420 s by default,
and says what it skipped). Steps:

1. Synthesize Llama 3.1 8B at full scale (32 layers, hidden 4096, 8 KV heads, vocabulary 128256, llama3 rope
   scaling; 8.03 B parameters, 16.1 GB bf16) into the HF cache layout under --model-dir, unless it is there.
   At tiny scale the checkpoint is re-described with 2 heads of 32 (1 KV head; the same tensors), because
   vLLM's CPU attention has no kernel for the tiny model's head size of 16; every variant serves that one.
2. For each variant of the runner, loaded in this process through `LLMRunner.setup` (the serving code path):
   cold load by phase (the weight files are first evicted from the page cache with posix_fadvise DONTNEED,
   which is advisory), warm VRAM after load; then, through the runner's backend (`backend.generate`, the
   code every request runs, without HTTP; one job thread per stream): time to first token for a 128-token
   prompt, single-stream decode tokens/s over 256 new tokens, and aggregate tokens/s at 1, 4 and 8
   concurrent streams, each with its peak VRAM.
   Portable engine (LLM_BACKEND=transformers) variants: bf16 (dynamic cache, step-level batching), bf16 +
   LLM_COMPILE (static cache, CUDA graphs; MAX_MODEL_LEN 1024 because the static cache attends its whole
   length each step), QUANTIZE=int4 and QUANTIZE=int8 (torchao; CUDA only; skipped with the reason when
   torchao is missing; int8 single stream only).
   vLLM (LLM_BACKEND=vllm, where vLLM is importable; --vllm-variants): vllm-bf16 on the same weights and
   vllm-int4 on an AWQ int4 checkpoint of the same shapes synthesized here (random packed weights, group
   size 128, 32 at tiny scale; bf16 on the CPU, where vLLM's AWQ kernels need it). Each runs right after
   its portable counterpart, so a deadline cut still leaves pairs. vLLM's GPU memory is in its own
   processes: its rows give the device's used memory (it reserves GPU_MEMORY_UTILIZATION of the card).
3. The baseline in the same run, on the bf16 weights: plain transformers `generate` (dynamic cache, default
   attention, greedy), single stream and batches of 4 and 8 equal-length prompts.
4. Each decode rate also as a fraction of the memory-bandwidth limit: HBM bytes/s divided by the weight bytes
   (every decode step reads every weight once; H100 SXM: 3.35 TB/s / 16.06 GB = ~209 tokens/s).

Random weights rarely emit an end-of-reply token, but the end-of-reply ids are disabled anyway (engine,
vLLM and baseline) so every stream generates exactly --new-tokens tokens. Greedy decoding throughout.
Targets on an H100 (issue 5): >= 170 tokens/s single-stream bf16, time to first token <= 30 ms, cold load
<= 5 s, int4 peak VRAM <= 6.5 GB. Timings use torch.cuda.synchronize(); peaks use reset_peak_memory_stats()
before each measured run.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import os
import platform
import shutil
import sys
import threading
import time
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from runner_sdk import Job, RunnerSettings  # noqa: E402
from runner_sdk.runner import LoadContext  # noqa: E402
from runners.llm.backends import Prompt  # noqa: E402
from runners.llm.runner import LLMRunner  # noqa: E402
from runners.llm.synth import DEFAULT_MODEL_ID, synthesize  # noqa: E402

# Peak HBM bandwidth by device name (vendor datasheets), bytes/s.
HBM_BYTES_PER_S = [
    ("H200", 4.8e12), ("H100 NVL", 3.9e12), ("H100 PCIe", 2.0e12), ("H100", 3.35e12),
    ("A100-SXM4-80GB", 2.039e12), ("A100 80GB PCIe", 1.935e12), ("A100", 1.555e12), ("L40S", 0.864e12),
    ("RTX 4090", 1.008e12), ("A10", 0.6e12),
]
GB = 1e9
# The portable engine's variants (LLM_BACKEND=transformers) and vLLM's (LLM_BACKEND=vllm).
VARIANT_ENV = {
    "bf16": {},
    "compile": {"LLM_COMPILE": "1", "MAX_MODEL_LEN": "1024"},
    "int8": {"QUANTIZE": "int8"},
    "int4": {"QUANTIZE": "int4"},
    "vllm-bf16": {},
    "vllm-int4": {},
}
# The Llama linear layers an AWQ checkpoint quantises, as (input features, output features) of the config.
AWQ_LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
               "mlp.up_proj", "mlp.down_proj")


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


def device_used_gb(device: str) -> float | None:
    """Memory in use on the whole device (every process: vLLM's workers are not this one)."""
    if not device.startswith("cuda"):
        return None
    free, total = torch.cuda.mem_get_info()
    return round((total - free) / GB, 2)


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


# --- checkpoints ----------------------------------------------------------------------------------------
def vllm_servable_tiny(snapshot: Path, out: Path) -> Path:
    """The tiny checkpoint re-described with head size 32 (2 heads, 1 KV head: the same tensors), which
    vLLM's CPU attention has kernels for (not 16). The weight and tokenizer files are links."""
    out.mkdir(parents=True, exist_ok=True)
    for f in snapshot.iterdir():
        if f.name != "config.json" and not (out / f.name).exists():
            (out / f.name).symlink_to(f.resolve())
    config = json.loads((snapshot / "config.json").read_text())
    config.update(num_attention_heads=2, num_key_value_heads=1, head_dim=32)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return out


def synthesize_awq(snapshot: Path, out: Path, group_size: int) -> Path:
    """An AWQ int4 (GEMM layout) checkpoint of `snapshot`'s shapes: random packed weights and zero points,
    small fp16 scales, so dequantised weights are about as large as the synthetic bf16 ones; embeddings,
    norms and lm_head copied in fp16. One shard per layer. Kept if already there."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    if (out / "model.safetensors.index.json").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    config = json.loads((snapshot / "config.json").read_text())
    h, inter = config["hidden_size"], config["intermediate_size"]
    hd = config.get("head_dim") or h // config["num_attention_heads"]
    q, kv = config["num_attention_heads"] * hd, config["num_key_value_heads"] * hd
    shapes = dict(zip(AWQ_LINEARS, [(h, q), (h, kv), (h, kv), (q, h), (h, inter), (h, inter), (inter, h)],
                      strict=True))
    g = torch.Generator().manual_seed(0)
    weight_map: dict[str, str] = {}

    def save(tensors: dict[str, torch.Tensor], name: str) -> None:
        save_file(tensors, str(out / name), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(tensors, name))

    for layer in range(config["num_hidden_layers"]):
        tensors = {}
        for module, (n_in, n_out) in shapes.items():
            key = f"model.layers.{layer}.{module}"
            tensors[f"{key}.qweight"] = torch.empty(n_in, n_out // 8, dtype=torch.int32).random_(generator=g)
            tensors[f"{key}.qzeros"] = torch.empty(n_in // group_size, n_out // 8,
                                                   dtype=torch.int32).random_(generator=g)
            tensors[f"{key}.scales"] = torch.full((n_in // group_size, n_out), 0.003, dtype=torch.float16)
        save(tensors, f"model-layer-{layer:03d}.safetensors")
    rest = {}
    for path in sorted(snapshot.glob("*.safetensors")):
        with safe_open(str(path), "pt") as f:
            for key in f.keys():  # noqa: SIM118 - safe_open has no __iter__
                if not any(key.endswith(f"{m}.weight") for m in AWQ_LINEARS):
                    rest[key] = f.get_tensor(key).to(torch.float16)
    save(rest, "model-rest.safetensors")
    for f in snapshot.iterdir():
        if f.suffix not in (".safetensors",) and f.name not in ("config.json", "model.safetensors.index.json"):
            shutil.copy(f.resolve(), out / f.name)
    config.update(dtype="float16", quantization_config={
        "quant_method": "awq", "bits": 4, "group_size": group_size, "zero_point": True, "version": "gemm"})
    (out / "config.json").write_text(json.dumps(config, indent=2))
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return out


def checkpoint(args, name: str, snapshot: Path) -> Path:
    """The folder a variant serves: the bf16 snapshot, or the AWQ int4 one for vllm-int4."""
    if name != "vllm-int4":
        return snapshot
    return synthesize_awq(snapshot, Path(args.model_dir) / f"bench-llm-awq-int4-{args.scale}",
                          32 if args.scale == "tiny" else 128)


def weight_bytes_on_disk(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.safetensors"))


# --- measuring ------------------------------------------------------------------------------------------
def load(args, name: str, folder: Path, capacity: int) -> tuple[LLMRunner, dict]:
    """The runner on `folder` with the variant's backend and env, set up and warmed up as `serve` does."""
    vllm = name.startswith("vllm")
    settings = RunnerSettings(pipeline="llm", model_id=str(folder), model_dir=args.model_dir,
                              device=args.device, capacity=capacity, queue_size=0)
    evict_page_cache(folder)
    reset_peak(args.device)
    t0 = time.perf_counter()
    variant_env = {"LLM_BACKEND": "vllm" if vllm else "transformers", **VARIANT_ENV[name]}
    with env(variant_env):
        runner = LLMRunner(settings, args.device)
        ctx = LoadContext(settings, args.device)
        runner.setup(ctx)
        sync(args.device)
        with ctx.phase("warmup"):
            runner.warmup()
            sync(args.device)
    total = time.perf_counter() - t0
    # Random weights: every stream runs to max_tokens.
    if vllm:
        runner.backend.ignore_eos = True
    else:
        runner.engine.eos_ids = set()
    return runner, {
        "phases_s": {k: round(v, 3) for k, v in ctx.timer.seconds.items()}, "load_s": round(total, 3),
        "warm_vram_gb": device_used_gb(args.device) if vllm else allocated_gb(args.device),
        "load_peak_vram_gb": None if vllm else peak_gb(args.device),
        "notes": ctx.notes, "optimisations": ctx.applied, "dtype": ctx.dtype,
    }


def prompt(args, i: int) -> list[int]:
    g = torch.Generator().manual_seed(1000 + i)
    return torch.randint(0, 700, (args.prompt_tokens,), generator=g).tolist()  # regular (non-special) ids


def run_streams(runner: LLMRunner, args, n: int) -> dict:
    """n requests submitted at once to the runner's backend, each read by its own job thread as the server
    does; returns TTFT (first request), decode rate and aggregate rate."""
    request = types.SimpleNamespace(temperature=0.0, top_p=1.0, top_k=-1, seed=None, max_tokens=args.new_tokens)
    first_at, done_at, counts, errors = [None] * n, [None] * n, [0] * n, []
    vllm = runner.backend.name == "vllm"

    def consume(i: int, events) -> None:
        try:
            for _kind, _value, completion in events:
                now = time.perf_counter()
                if completion and first_at[i] is None:
                    first_at[i] = now
                counts[i] = completion
            done_at[i] = time.perf_counter()
        except Exception as exc:  # noqa: BLE001 - raised below, in the caller's thread
            errors.append(f"stream {i}: {exc!r}")

    sync(args.device)
    reset_peak(args.device)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=consume, args=(i, runner.backend.generate(Prompt(request, prompt(args, i)),
                                                                               Job())))
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError("; ".join(errors))
    sync(args.device)
    wall = time.perf_counter() - t0
    total = sum(counts)
    out = {"streams": n, "tokens": total, "wall_s": round(wall, 3), "aggregate_tok_s": round(total / wall, 1),
           "peak_vram_gb": device_used_gb(args.device) if vllm else peak_gb(args.device)}
    if n == 1:
        ttft = first_at[0] - t0
        out["ttft_ms"] = round(ttft * 1000, 1)
        out["decode_tok_s"] = round((counts[0] - 1) / max(done_at[0] - first_at[0], 1e-9), 1)
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


# --- the run --------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path(os.environ.get(
        "RUNNER_BENCH_SYNTH_DIR", "/tmp/runner-bench-models")))
    parser.add_argument("--scale", choices=["tiny", "full"], default="full")
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--prompt-tokens", type=int, default=128)
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--streams", default="1,4,8")
    parser.add_argument("--variants", default="bf16,compile,int4,int8", help="the portable engine's")
    parser.add_argument("--vllm-variants", default="bf16,int4",
                        help="vLLM's (bf16, int4), measured where vLLM is importable; '' for none")
    parser.add_argument("--hbm-gbps", type=float, default=None, help="override the HBM bandwidth (GB/s)")
    parser.add_argument("--repeats", type=int, default=1, help="runs per measurement; the median is kept")
    parser.add_argument("--deadline-s", type=float, default=420.0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--note", default="", help="a line about the machine or the run, printed in the report")
    return parser.parse_args(argv)


def plan(args, report: dict) -> list[str]:
    """Variants in run order: each vLLM one right after its portable counterpart."""
    names = [n for n in args.variants.split(",") if n]
    wanted = [f"vllm-{n}" for n in args.vllm_variants.split(",") if n]
    if wanted and importlib.util.find_spec("vllm") is None:
        report["skipped"] += [f"{n}: vLLM is not installed" for n in wanted]
        wanted = []
    for name in wanted:
        base = name.removeprefix("vllm-")
        names.insert(names.index(base) + 1 if base in names else len(names), name)
    return names


def skip_reason(args, name: str) -> str | None:
    if name not in VARIANT_ENV:
        return "unknown variant"
    if name in ("int8", "int4", "compile") and not args.device.startswith("cuda"):
        return "CUDA only"
    if name in ("int8", "int4") and importlib.util.find_spec("torchao") is None:
        return "torchao not installed"
    return None


def measure(args, report: dict, name: str, snapshot: Path, started: float) -> None:
    """Load one variant, time its streams (and, after bf16, the `generate` baseline), then free it."""
    streams = [int(x) for x in args.streams.split(",")]
    elapsed = lambda: time.perf_counter() - started  # noqa: E731
    print(f"[{elapsed():6.1f}s] loading {name}", flush=True)
    try:
        t0 = time.perf_counter()
        folder = checkpoint(args, name, snapshot)
        made_s = round(time.perf_counter() - t0, 1)
        runner, loaded = load(args, name, folder, max(streams))
    except Exception as exc:  # report and go on with the other variants
        report["skipped"].append(f"{name}: load failed: {exc!r}")
        return
    vllm = name.startswith("vllm")
    result = {"load": loaded, "runs": [], "checkpoint_s": made_s if name == "vllm-int4" else None,
              "weight_bytes": weight_bytes_on_disk(folder) if vllm else weight_bytes(runner.model)}
    # bf16 and int4, either engine: 1..8 streams (the comparison); int8: the single-stream figure only.
    for n in streams if name != "int8" else [1]:
        if elapsed() > args.deadline_s:
            report["skipped"].append(f"{name} x{n}: deadline")
            continue
        print(f"[{elapsed():6.1f}s] {name}: {n} stream(s)", flush=True)
        try:
            runs = [run_streams(runner, args, n) for _ in range(args.repeats)]
        except Exception as exc:  # noqa: BLE001 - reported; the other variants still run
            report["skipped"].append(f"{name} x{n}: failed: {exc!r}")
            continue
        result["runs"].append(sorted(runs, key=lambda r: r["aggregate_tok_s"])[len(runs) // 2])  # median
    report["variants"][name] = result
    if name == "bf16":
        runner.engine.close()
        report["bf16_weight_bytes"] = result["weight_bytes"]
        for n in streams:
            if elapsed() > args.deadline_s:
                report["skipped"].append(f"baseline x{n}: deadline")
                continue
            print(f"[{elapsed():6.1f}s] baseline generate: {n} stream(s)", flush=True)
            report["baseline"][str(n)] = baseline(runner.model, args, n)
    runner.backend.close()
    if not vllm:
        runner.engine.thread.join(10)
    del runner
    gc.collect()
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    started = time.perf_counter()
    device_name, hbm = bandwidth(args.device, args.hbm_gbps)
    report: dict = {"machine": {"device": device_name, "host": platform.node(), "cpu": platform.processor(),
                                "torch": torch.__version__, "hbm_bytes_per_s": hbm},
                    "config": vars(args) | {"model_dir": str(args.model_dir), "out": str(args.out)},
                    "variants": {}, "baseline": {}, "skipped": []}
    if not args.device.startswith("cuda"):
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB: vLLM's CPU KV cache
    t0 = time.perf_counter()
    snapshot = synthesize(DEFAULT_MODEL_ID, args.model_dir, args.scale)
    if args.scale == "tiny":
        snapshot = vllm_servable_tiny(snapshot, Path(args.model_dir) / "bench-llm-tiny-hd32")
    report["synth_s"] = round(time.perf_counter() - t0, 1)
    report["snapshot"] = str(snapshot)
    for name in plan(args, report):
        reason = skip_reason(args, name)
        if reason is None and time.perf_counter() - started > args.deadline_s:
            reason = "deadline"
        if reason:
            report["skipped"].append(f"{name}: {reason}")
            continue
        measure(args, report, name, snapshot, started)
        write(report, args)
    report["total_s"] = round(time.perf_counter() - started, 1)
    write(report, args)
    print(render(report))
    return report


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
             "", report["config"].get("note") or "",
             "", "Portable engine: `bf16`, `compile`, `int4`, `int8` (LLM_BACKEND=transformers); vLLM in process: "
             "`vllm-bf16`, `vllm-int4` (AWQ). vLLM's VRAM columns are the device's used memory.",
             "", "| variant | load s (phases) | warm VRAM GB | streams | TTFT ms | decode tok/s | aggregate tok/s "
             "| peak VRAM GB | vs bandwidth limit |", "|---|---|---|---|---|---|---|---|---|"]
    for name, v in report["variants"].items():
        phases = ", ".join(f"{k} {s}" for k, s in v["load"]["phases_s"].items())
        for run in v["runs"]:
            lines.append(
                f"| {name} ({v['load']['dtype']}) | {v['load']['load_s']} ({phases}) | {v['load']['warm_vram_gb']} | "
                f"{run['streams']} | {run.get('ttft_ms', '')} | {run.get('decode_tok_s', '')} | "
                f"{run['aggregate_tok_s']} | {run['peak_vram_gb']} | "
                f"{limit_fraction(report, run.get('decode_tok_s'), v['weight_bytes'])} |")
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
