"""The harness the image-to-text, segment-anything-2 and text-to-speech GPU benchmarks share.

Each `benchmarks/<pipeline>/gpu_bench.py` describes its model, requests and naive transformers baseline in a
`Spec`; `run` then, within a time budget:

1. synth: the model at `--scale` (full: the real shapes with random weights; tiny: for the CPU test) in the
   HF cache layout, unless already there.
2. runner, capacity 1: `python -m runner_sdk serve` in a fresh process (the cold load includes the imports,
   as a container start does; `--in-process` serves from this process instead) -> spawn to IDLE, the load
   phases, warm VRAM; one unmeasured request, then N sequential requests shaped as go-livepeer sends them:
   p50/p95 at the client, the peak VRAM of a request.
3. runner, capacity 2 with 2 clients (the image-to-text runner batches waiting requests): p50/p95, req/s.
4. the naive baseline in the same run: plain transformers (`from_pretrained(...).to(device)` at upstream's
   precision, one model call per request, no HTTP), its load time, p50/p95 and peak VRAM.

The report is written to `--out` (markdown, and the numbers as .json beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
GB = 1024**3


@dataclass
class Spec:
    """One benchmark. `request(i, scale)`: httpx keyword arguments of request i; `naive(model_dir, n, device,
    scale)`: the baseline's numbers (ready_s, p50_s, p95_s, per_s, peak_vram)."""

    title: str
    pipeline: str
    model_id: str
    synth: Callable[[str, Path, str], Any]
    request: Callable[[int, str], dict]
    naive: Callable[[Path, int, str, str], dict]
    env: Callable[[str], dict] = field(default=lambda scale: {})
    default_out: str = ""


@contextmanager
def _environ(values: dict[str, str]):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def server(spec: Spec, args, capacity: int, name: str):
    """(url, ready_s) of the runner for the block: a fresh process, or this one with --in-process."""
    import httpx

    from runner_sdk.pipelines import runner_class
    from runner_sdk.testing import free_port, serve

    env = {"HF_HUB_OFFLINE": "1", **spec.env(args.scale)}
    t0 = time.perf_counter()
    if args.in_process:
        with _environ(env), serve(runner_class(spec.pipeline), model_id=spec.model_id, model_dir=args.model_dir,
                                  device=args.device, capacity=capacity, queue_size=8) as srv:
            yield srv.url, time.perf_counter() - t0
        return
    port = free_port()
    logfile = open(Path(args.logdir) / f"{name}.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner_sdk", "serve", "--device", args.device, "--host", "127.0.0.1", "--port",
         str(port), "--capacity", str(capacity), "--queue-size", "8"], cwd=str(REPO), stdout=logfile,
        stderr=subprocess.STDOUT, env={**os.environ, **env, "PIPELINE": spec.pipeline, "MODEL_ID": spec.model_id,
                                       "MODEL_DIR": str(args.model_dir), "PYTHONPATH": str(REPO)})
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if proc.poll() is not None or time.perf_counter() - t0 > 600:
                raise RuntimeError(f"runner did not start: {(Path(args.logdir) / f'{name}.log').read_text()[-2000:]}")
            try:
                status = httpx.get(url + "/health", timeout=2).json()["status"]
            except httpx.TransportError:
                status = None
            if status in ("IDLE", "OK"):
                break
            if status == "ERROR":
                raise RuntimeError(httpx.get(url + "/health").json().get("error"))
            time.sleep(0.05)
        yield url, time.perf_counter() - t0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        logfile.close()


def latency(samples: list[float], wall: float) -> dict:
    """p50/p95 of `samples` (seconds) and the rate over `wall`."""
    from runner_sdk.stats import percentile

    return {"p50_s": percentile(samples, 50), "p95_s": percentile(samples, 95), "per_s": len(samples) / wall,
            "n": len(samples)}


def drive(spec: Spec, url: str, n: int, clients: int, scale: str) -> dict:
    """`n` requests from `clients` threads; each answer must be a 200."""
    import httpx

    lat: list[float] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        for i in range(k, n, clients):
            t = time.perf_counter()
            r = httpx.post(url + "/" + spec.pipeline, timeout=600, **spec.request(i, scale))
            if r.status_code != 200:
                raise RuntimeError(f"{r.status_code}: {r.text[:300]}")
            with lock:
                lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if len(lat) != n:
        raise RuntimeError(f"{n - len(lat)} request(s) failed")
    return latency(lat, time.perf_counter() - t0)


def runner_row(spec: Spec, args, capacity: int, clients: int) -> dict:
    """The runner at `capacity`: cold load, warm VRAM, latency with `clients` clients, peak VRAM."""
    import httpx

    with server(spec, args, capacity, f"c{capacity}") as (url, ready_s):
        httpx.post(url + "/" + spec.pipeline, timeout=600, **spec.request(10_000, args.scale))  # not counted
        stats = drive(spec, url, args.requests, clients, args.scale)
        info = httpx.get(url + "/runner/info", timeout=10).json()
    vram = info.get("vram") or {}
    return {"ready_s": ready_s, **stats, "load_phases_s": (info.get("load") or {}).get("phases_s"),
            "warm_vram": vram.get("warm"), "peak_vram": vram.get("peak"), "dtype": info.get("dtype"),
            "applied": info.get("optimisations_applied"), "runner": info.get("runner")}


def timed_calls(call: Callable[[int], None], n: int, device: str) -> dict:
    """The naive baselines' measurement: one unmeasured call, then `n`, with the largest peak VRAM."""
    import torch

    cuda = device.startswith("cuda")
    call(0)
    lat, peak = [], 0
    t_all = time.perf_counter()
    for i in range(n):
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        call(i + 1)
        if cuda:
            torch.cuda.synchronize()
            peak = max(peak, torch.cuda.max_memory_allocated())
        lat.append(time.perf_counter() - t)
    return {**latency(lat, time.perf_counter() - t_all), "peak_vram": {"torch_allocated": peak} if cuda else None}


def gib(value: Any) -> str:
    return f"{value / GB:.2f}" if isinstance(value, (int, float)) and value else "n/a"


def report(spec: Spec, results: dict, args) -> str:
    """The markdown table of every section, then the load phases and what each runner applied."""
    env = results["environment"]
    lines = [f"# {spec.title}", "", f"Machine: {env['device']}; torch {env['torch']}, transformers "
             f"{env['transformers']}. Scale {args.scale}, {args.requests} requests per row, total "
             f"{results.get('total_s', 0):.0f} s. Latency at the client (the runner over HTTP; the naive "
             "baseline without HTTP).", "",
             "| configuration | cold load to ready (s) | warm VRAM (GiB) | peak VRAM (GiB) | p50 (s) | p95 (s) | req/s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, row in results["rows"].items():
        if "skipped" in row:
            lines.append(f"| {name} | skipped: {row['skipped']} | | | | | |")
            continue
        warm, peak = row.get("warm_vram") or {}, row.get("peak_vram") or {}
        lines.append(f"| {name} | {row['ready_s']:.2f} | {gib(warm.get('torch_allocated'))} | "
                     f"{gib(peak.get('torch_allocated'))} | {row['p50_s']:.3f} | {row['p95_s']:.3f} | "
                     f"{row['per_s']:.2f} |")
    lines += ["", "Cold load by phase (s), dtype and optimisations:", ""]
    for name, row in results["rows"].items():
        if row.get("load_phases_s"):
            lines.append(f"- {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in row["load_phases_s"].items())
                         + f"; dtype {row.get('dtype')}; applied {json.dumps(row.get('applied'))}")
    return "\n".join(lines) + "\n"


def parse_args(spec: Spec, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=spec.title)
    parser.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / f"{spec.pipeline}-bench")
    parser.add_argument("--scale", choices=["tiny", "full"], default="full")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--budget-s", type=float, default=420.0, help="skip sections that would start later")
    parser.add_argument("--out", type=Path, default=REPO / spec.default_out)
    parser.add_argument("--in-process", action="store_true", help="serve from this process (the CPU test)")
    return parser.parse_args(argv)


def run(spec: Spec, argv: list[str] | None = None) -> dict:
    """The whole benchmark (see the module docstring); returns the results and writes `--out` (.md, .json).

    Args:
        spec: what to measure. argv: command-line arguments (None: sys.argv).
    Returns:
        {"environment": ..., "rows": {section: numbers or {"skipped": why}}, "total_s": ...}.
    """
    import torch
    import transformers

    args = parse_args(spec, argv)
    t_start = time.perf_counter()
    cuda = args.device.startswith("cuda")
    assert not cuda or torch.cuda.is_available(), "--device cuda needs a GPU (use --device cpu --scale tiny)"
    name = torch.cuda.get_device_name(0) if cuda else f"CPU ({os.cpu_count()} cores)"
    results: dict = {"environment": {"device": name, "torch": torch.__version__,
                                     "transformers": transformers.__version__}, "rows": {}}
    args.logdir = None if args.in_process else tempfile.mkdtemp(prefix=f"{spec.pipeline}-bench-logs-")
    marker = args.model_dir / f".synth-{args.scale}-{spec.model_id.replace('/', '--')}"
    if not marker.exists():
        spec.synth(spec.model_id, args.model_dir, args.scale)
        marker.write_text("ok")
    plan = [("runner, capacity 1", 60, lambda: runner_row(spec, args, 1, 1)),
            ("runner, capacity 2 (2 clients)", 60, lambda: runner_row(spec, args, 2, 2)),
            ("naive transformers", 60, lambda: spec.naive(args.model_dir, args.requests, args.device, args.scale))]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for title, needed, fn in plan:
        if time.perf_counter() - t_start + needed > args.budget_s:
            results["rows"][title] = {"skipped": f"time budget ({args.budget_s:.0f} s)"}
            continue
        try:
            results["rows"][title] = fn()
        except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others' numbers
            results["rows"][title] = {"skipped": f"failed: {type(exc).__name__}: {str(exc)[:300]}"}
        results["total_s"] = time.perf_counter() - t_start
        args.out.write_text(report(spec, results, args))
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str))
    print(args.out.read_text())
    return results
