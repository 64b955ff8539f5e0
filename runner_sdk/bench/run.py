"""`runner-sdk bench`: for each chosen pipeline, measure the runner at capacity 1..N (a fresh server process
each), then write results.json (the schema `aimodels plan` reads), raw.json, results.md and PNG charts.

Real weights are used when MODEL_DIR holds the model; otherwise full-scale (or tiny) synthetic weights
are written under MODEL_DIR/runner-sdk-synthetic/SCALE (never into --out: full scale is tens of GB), and
every figure says which. Each capacity is measured in repeats; a large spread between them is reported, and
`aimodels plan` does not pick a higher capacity whose gain is within that spread.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

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
from .measure import Measurement, measure, measure_shared
from .report import NOISY, charts, markdown
from .workloads import workload

SYNTH_SUBDIR = "runner-sdk-synthetic"
# Random weights never emit an end token: bound what they generate so a tiny run takes seconds.
SYNTHETIC_ENV = {"audio-to-text": {"WHISPER_MAX_NEW_TOKENS": "8"}}


def prepare_weights(pipeline: str, model_id: str, model_dir: Path, synth_dir: Path, scale: str) -> tuple[Path, str]:
    """The folder to serve from and what the weights are.

    Args:
        pipeline: the pipeline (its synthetic builder).
        model_id: the model.
        model_dir: where real weights are looked for.
        synth_dir: where synthetic ones are written when the real ones are missing.
        scale: "tiny" or "full".

    Returns:
        (folder to serve from, "real" or "synthetic-SCALE").
    """
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
    synth_dir = Path(os.environ.get("RUNNER_BENCH_SYNTH_DIR") or model_dir / SYNTH_SUBDIR / scale)
    if device == "auto":
        import torch

        device = "cuda:0" if torch.cuda.is_available() else "cpu"
    figures, raw = [], []
    for pipeline in pipelines:
        model_id = (models or {}).get(pipeline, PIPELINES[pipeline].demo_model_id)
        print(f"{pipeline}: preparing weights for {model_id}", flush=True)
        serve_dir, weights = prepare_weights(pipeline, model_id, model_dir, synth_dir, scale)
        env = dict(SYNTHETIC_ENV.get(pipeline, {})) if weights != "real" else {}
        if scale == "tiny":  # a dry run: the bench's own first request warms the runner up instead
            env["RUNNER_WARMUP"] = "false"
        runs = _measure_capacities(pipeline, model_id, serve_dir, device, max_capacity, requests, scale, env)
        unit = workload(pipeline, scale).unit
        figures.append(model_figures(pipeline, model_id, weights, unit, runs))
        raw.append({"pipeline": pipeline, "model_id": model_id, "weights": weights, "unit": unit,
                    "runs": [{**r.__dict__, "cold_load_s": r.cold_load_s, "spread": r.spread} for r in runs]})
    results = BenchResults(source="measured", machine=machine(device), models=figures,
                           note=f"runner-sdk bench, scale {scale}, device {device}, "
                                f"{time.strftime('%Y-%m-%d %H:%M:%S')}"
                                + ("; tiny: runner warm-up skipped, so cold loads exclude it" if scale == "tiny" else ""))
    (out / "results.json").write_text(results.dump_json())
    (out / "raw.json").write_text(json.dumps(raw, indent=2, default=str) + "\n")
    (out / "results.md").write_text(markdown(results, raw))
    charts(results, out, f"{device}, scale {scale}")
    return results


def _measure_capacities(pipeline: str, model_id: str, serve_dir: Path, device: str, max_capacity: int,
                        requests: int, scale: str, env: dict[str, str] | None) -> list[Measurement]:
    """A visible loading stage, then the requests with a progress bar: one fresh server per capacity on a GPU
    (so each peak VRAM is its own), one server driven by 1..N clients on the CPU."""
    work = workload(pipeline, scale)
    if device == "cpu":  # no VRAM to leak between runs: one server, 1..N clients
        print(f"{pipeline}: loading (one server at capacity {max_capacity}, CPU)...", flush=True)
        with tqdm(total=requests * sum(range(1, max_capacity + 1)), desc=pipeline, unit="req", leave=False) as bar:
            runs = measure_shared(pipeline, model_id, serve_dir, device, list(range(1, max_capacity + 1)), work,
                                  requests, progress=lambda: bar.update(1), extra_env=env)
    else:
        runs = []
        for capacity in range(1, max_capacity + 1):
            n = requests * capacity
            print(f"{pipeline} capacity {capacity}: loading (fresh server process)...", flush=True)
            with tqdm(total=n, desc=f"{pipeline} capacity {capacity}", unit="req", leave=False) as bar:
                runs.append(measure(pipeline, model_id, serve_dir, device, capacity, work, n,
                                    progress=lambda: bar.update(1), extra_env=env))
    for run in runs:
        spread = f", spread {run.spread:.0%} between repeats" if run.spread is not None else ""
        print(f"{pipeline} capacity {run.capacity}: loaded in {run.cold_load_s:.1f} s, p50 "
              f"{run.p(50) or 0:.3f} s{spread}" + (" -- NOISY" if (run.spread or 0) > NOISY else ""), flush=True)
    return runs


def benchable(pipelines: list[str] | None = None) -> tuple[list[str], list[str]]:
    """(pipelines that can be measured, skipped ones with the reason): served, with a workload.

    Args:
        pipelines: the wanted ones; default: every served pipeline of the table.

    Returns:
        The measurable pipelines in order, and "name: reason" lines for the rest.
    """
    import importlib.util

    ok, skipped = [], []
    for name in pipelines or [p.name for p in PIPELINES.values() if p.served]:
        row = PIPELINES[name]
        try:
            workload(name, "tiny")
        except ValueError:
            skipped.append(f"{name}: no benchmark workload yet")
            continue
        if row.runner is None or importlib.util.find_spec(row.runner.partition(":")[0]) is None:
            skipped.append(f"{name}: its runner is not installed")
            continue
        ok.append(name)
    return ok, skipped


def model_figures(pipeline: str, model_id: str, weights: str, unit: str, runs: list[Measurement]) -> ModelFigures:
    """The results.json record of one model from its runs at capacity 1, 2, ... (the first one is capacity 1)."""
    first = runs[0]
    return ModelFigures(
        pipeline=pipeline, model_id=model_id, warm_vram_bytes=warm_bytes(first),
        peak_vram_bytes=peak_bytes(first), cold_load_s=round(first.cold_load_s, 3),
        latency_s=Latency(p50=first.p(50), p95=first.p(95)) if first.latencies_s else None,
        throughput=Throughput(unit=unit, units_per_s=first.units_per_s or 0.0),
        by_capacity=[CapacityRun(capacity=r.capacity, peak_vram_bytes=peak_bytes(r), units_per_s=r.units_per_s,
                                 latency_p50_s=r.p(50), latency_p95_s=r.p(95),
                                 spread=round(r.spread, 3) if r.spread is not None else None) for r in runs],
        weights=weights, source="measured",
        notes="; ".join(first.notes + [f"device {first.device}, dtype {first.dtype}",
                                       "cold load of the first run with the page cache as found; later "
                                       "capacities load with a warm page cache"]))


