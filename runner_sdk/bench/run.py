"""`runner-sdk bench`: for each chosen pipeline, measure the runner at capacity 1..N (a fresh server process
each), then write results.json (the schema `aimodels plan` reads), raw.json, results.md and PNG charts.

Real weights are used when MODEL_DIR holds the model; otherwise full-scale (or tiny) synthetic weights
are written to a separate folder first, and every figure says which.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .. import nvml
from ..aimodels.results import (
    BenchResults,
    CapacityRun,
    Latency,
    Machine,
    ModelFigures,
    Throughput,
)
from ..hardware import cpu_name
from ..pipelines import PIPELINES, synthesize
from ..resolve import cache_folder
from .measure import Measurement, measure
from .workloads import workload


def prepare_weights(pipeline: str, model_id: str, model_dir: Path, synth_dir: Path, scale: str) -> tuple[Path, str]:
    """(model_dir to serve from, weights label)."""
    if cache_folder(model_dir, model_id).exists():
        return model_dir, "real"
    if not cache_folder(synth_dir, model_id).exists():
        synthesize(pipeline, model_id, synth_dir, scale)
    return synth_dir, f"synthetic-{scale}"


def peak_bytes(m: Measurement) -> int | None:
    """Peak device memory of the process: torch's reserved peak plus what the process holds outside torch
    (CUDA context, cuBLAS workspaces), taken from NVML at warm time; NVML's own end-of-request delta if larger."""
    warm, peak = m.warm_vram or {}, m.peak_vram or {}
    if not peak:
        return None
    outside_torch = 0
    if warm.get("nvml_used_delta") is not None and warm.get("torch_reserved") is not None:
        outside_torch = max(0, warm["nvml_used_delta"] - warm["torch_reserved"])
    candidates = [peak.get("nvml_used_delta")]
    if peak.get("torch_reserved") is not None:
        candidates.append(peak["torch_reserved"] + outside_torch)
    known = [c for c in candidates if c is not None]
    return max(known) if known else None


def warm_bytes(m: Measurement) -> int | None:
    """Device memory held by the idle, loaded process (NVML's delta, else torch's reserved)."""
    warm = m.warm_vram or {}
    return warm.get("nvml_used_delta") if warm.get("nvml_used_delta") is not None else warm.get("torch_reserved")


def machine(device: str) -> Machine:
    """The GPU `device` ("cuda:N") is, as NVML names it, and this host's CPU; no GPU facts on the CPU or without
    NVML."""
    name = mem = None
    if nvml.cuda_index(device) is not None:
        try:
            index = nvml.session().nvmlDeviceGetIndex(nvml.handle_for(device))  # torch's N need not be NVML's
            gpu = next(g for g in nvml.gpus() if g.index == index)
            name, mem = gpu.name, gpu.memory_total
        except Exception:  # noqa: BLE001 - the figures stand without the GPU's name
            pass
    return Machine(gpu_name=name, gpu_memory_bytes=mem,
                   host=f"{socket.gethostname()}: {os.cpu_count()} cores, {cpu_name()}")


def run_bench(pipelines: list[str], out: Path, model_dir: Path, scale: str = "full", device: str = "auto",
              max_capacity: int = 2, requests: int = 8, models: dict[str, str] | None = None) -> BenchResults:
    """Measure each pipeline at capacity 1..`max_capacity` and write results.json, raw.json, results.md and
    the charts into `out`.

    Args:
        pipelines: the pipelines to measure (each needs a workload and a synthetic-weights builder).
        out: the results folder (created).
        model_dir: where real weights are looked for; synthetic ones are written elsewhere when missing.
        scale: "full" (production-sized weights and requests) or "tiny" (CI).
        device: "auto", "cpu" or "cuda:N".
        max_capacity: the highest capacity measured.
        requests: requests per client at each capacity.
        models: model id per pipeline (default: the pipeline table's demo id).

    Returns:
        What results.json holds.

    Raises:
        ServerFailed: a server under test did not start or failed.
    """
    out.mkdir(parents=True, exist_ok=True)
    # Synthetic weights never go inside `out` when that is a folder to commit: RUNNER_BENCH_SYNTH_DIR wins.
    synth_dir = Path(os.environ.get("RUNNER_BENCH_SYNTH_DIR") or out / "synthetic-models")
    if device == "auto":
        import torch

        device = "cuda:0" if torch.cuda.is_available() else "cpu"
    figures, raw = [], []
    for pipeline in pipelines:
        model_id = (models or {}).get(pipeline, PIPELINES[pipeline].demo_model_id)
        serve_dir, weights = prepare_weights(pipeline, model_id, model_dir, synth_dir, scale)
        work = workload(pipeline, scale)
        runs: list[Measurement] = []
        for capacity in range(1, max_capacity + 1):
            n = requests * capacity
            with tqdm(total=n, desc=f"{pipeline} capacity {capacity}", unit="req", leave=False) as bar:
                runs.append(measure(pipeline, model_id, serve_dir, device, capacity, work, n,
                                    progress=lambda: bar.update(1)))
        figures.append(model_figures(pipeline, model_id, weights, work.unit, runs))
        raw.append({"pipeline": pipeline, "model_id": model_id, "weights": weights, "unit": work.unit,
                    "runs": [{**r.__dict__, "cold_load_s": r.cold_load_s} for r in runs]})
    results = BenchResults(source="measured", machine=machine(device), models=figures,
                           note=f"runner-sdk bench, scale {scale}, {time.strftime('%Y-%m-%d %H:%M:%S')}")
    (out / "results.json").write_text(results.dump_json())
    (out / "raw.json").write_text(json.dumps(raw, indent=2, default=str) + "\n")
    (out / "results.md").write_text(markdown(results, raw))
    charts(results, out)
    return results


def model_figures(pipeline: str, model_id: str, weights: str, unit: str, runs: list[Measurement]) -> ModelFigures:
    """The results.json record of one model from its runs at capacity 1, 2, ... (the first one is capacity 1)."""
    first = runs[0]
    return ModelFigures(
        pipeline=pipeline, model_id=model_id, warm_vram_bytes=warm_bytes(first),
        peak_vram_bytes=peak_bytes(first), cold_load_s=round(first.cold_load_s, 3),
        latency_s=Latency(p50=first.p(50), p95=first.p(95)) if first.latencies_s else None,
        throughput=Throughput(unit=unit, units_per_s=first.units_per_s or 0.0),
        by_capacity=[CapacityRun(capacity=r.capacity, peak_vram_bytes=peak_bytes(r), units_per_s=r.units_per_s,
                                 latency_p50_s=r.p(50), latency_p95_s=r.p(95)) for r in runs],
        weights=weights, source="measured",
        notes="; ".join(first.notes + [f"device {first.device}, dtype {first.dtype}",
                                       "cold load of the first run with the page cache as found; later "
                                       "capacities load with a warm page cache"]))


def _gib(value: int | None) -> str:
    return "not measured (CPU)" if value is None else f"{value / 2**30:.2f} GiB"


def markdown(results: BenchResults, raw: list[dict[str, Any]]) -> str:
    """results.md: the figures table, throughput and peak VRAM by capacity, cold load by phase."""
    m = results.machine
    where = f"{m.gpu_name} ({m.gpu_memory_bytes / 2**30:.0f} GiB)" if m.gpu_name else "CPU only, no GPU"
    lines = [f"# Runner benchmark: {where}", "", f"Host: {m.host}. {results.note}.", "",
             "| pipeline | model | weights | cold load | warm VRAM | peak VRAM | p50 | p95 | throughput (capacity 1) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for f in results.models:
        tp = f"{f.throughput.units_per_s:,.1f} {f.throughput.unit}/s" if f.throughput else "-"
        lat = f.latency_s
        lines.append(f"| {f.pipeline} | {f.model_id} | {f.weights} | {f.cold_load_s:.2f} s | {_gib(f.warm_vram_bytes)} "
                     f"| {_gib(f.peak_vram_bytes)} | {lat.p50:.3f} s | {lat.p95:.3f} s | {tp} |" if lat else
                     f"| {f.pipeline} | {f.model_id} | {f.weights} | - | - | - | - | - | {tp} |")
    lines += ["", "## Throughput and peak VRAM by capacity", "",
              "| pipeline | capacity | throughput | p50 | peak VRAM |", "|---|---|---|---|---|"]
    for f in results.models:
        for r in f.by_capacity:
            tp = f"{r.units_per_s:,.1f} {f.throughput.unit}/s" if r.units_per_s is not None else "-"
            p50 = f"{r.latency_p50_s:.3f} s" if r.latency_p50_s is not None else "-"
            lines.append(f"| {f.pipeline} | {r.capacity} | {tp} | {p50} | {_gib(r.peak_vram_bytes)} |")
    lines += ["", "## Cold load by phase (capacity 1 run)", ""]
    for entry in raw:
        phases = entry["runs"][0]["load_phases_s"]
        lines.append(f"- {entry['pipeline']}: " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()))
    lines += ["", "Peak VRAM is torch's reserved peak plus the process's memory outside torch (CUDA context) "
              "from NVML; VRAM is not measured on the CPU. Pricing units: pixels, audio milliseconds, tokens.", ""]
    return "\n".join(lines)


def charts(results: BenchResults, out: Path) -> None:
    """throughput.png (units/s by capacity, per model) and vram.png (warm and peak per model) in `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = results.models
    fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 3.6), squeeze=False)
    for ax, f in zip(axes[0], models, strict=True):
        caps = [r.capacity for r in f.by_capacity]
        ax.plot(caps, [r.units_per_s or 0 for r in f.by_capacity], marker="o")
        ax.set_title(f"{f.pipeline}\n{f.model_id}", fontsize=8)
        ax.set_xlabel("capacity")
        ax.set_ylabel(f"{f.throughput.unit}/s" if f.throughput else "units/s")
        ax.set_xticks(caps)
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3.6))
    names = [f.pipeline for f in models]
    warm = [(f.warm_vram_bytes or 0) / 2**30 for f in models]
    peak = [(f.peak_vram_bytes or 0) / 2**30 for f in models]
    xs = range(len(models))
    ax.bar([x - 0.2 for x in xs], warm, width=0.4, label="warm")
    ax.bar([x + 0.2 for x in xs], peak, width=0.4, label="peak")
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("GiB")
    if all(f.warm_vram_bytes is None for f in models):
        ax.text(0.5, 0.5, "VRAM not measured (CPU run)", ha="center", va="center", transform=ax.transAxes)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "vram.png", dpi=110)
    plt.close(fig)
