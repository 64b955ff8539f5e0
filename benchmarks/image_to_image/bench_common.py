"""The harness the three image-route GPU benchmarks share (image-to-image, upscale, image-to-video).

Each `benchmarks/<pipeline>/gpu_bench.py` describes its model, request and naive baseline in a `Spec`; `run`
then, within a time budget, in order:

1. synth: the model at `--scale` (full: real shapes, random fp16 weights; tiny: CPU) in the HF cache layout.
2. runner, capacity 1: `python -m runner_sdk serve` in a fresh process (so the cold load includes the
   imports, as a container start does) -> spawn-to-IDLE, the runner's load phases, warm VRAM; then N
   sequential requests over HTTP with go-livepeer's multipart body: latency p50/p95, per-request peak VRAM.
3. runner, capacity 2 with two clients: throughput and p50/p95.
4. the naive baseline in the same run: plain diffusers (`from_pretrained(...).to(device)`, a pipeline call
   per request, Pillow's default PNG + base64), in a fresh process; no HTTP, so a lower bound for the stock
   runner, which also serialises requests (its capacity-2 throughput is its capacity-1 throughput).
5. the spec's extra sections (DEEPCACHE, a larger input...).

`--in-process` (what the CPU test uses) serves from this process through `runner_sdk.testing` and calls the
naive baseline directly: the same sections end to end in seconds at tiny scale, without the cold imports.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
T_START = time.perf_counter()
GB = 1024**3


def elapsed() -> float:
    return time.perf_counter() - T_START


def log(msg: str) -> None:
    print(f"[{elapsed():6.1f}s] {msg}", flush=True)


@dataclass
class Spec:
    """What one benchmark measures. `request(i)` gives (fields, image bytes) of request i at the scale;
    `naive(model_dir, n, device, scale, variant)` returns the baseline's dict (ready_s, p50_s, p95_s, per_s, ...)."""

    title: str
    pipeline: str
    model_id: str
    synth: Callable[[str, Path, str], object]
    request: Callable[[int, str], tuple[dict, bytes]]
    naive: Callable[[Path, int, str, str, str], dict]
    env: Callable[[str], dict] = field(default=lambda scale: {})
    extra: Callable[[argparse.Namespace], list] = field(default=lambda args: [])  # (name, seconds, fn) tuples
    default_out: str = ""


def multipart(fields: dict, image: bytes) -> tuple[bytes, str]:
    """go-livepeer's body: the file part first (octet-stream, filename `image`), then text parts."""
    sys.path.insert(0, str(REPO / "tests"))
    from image_to_image.img_support import go_multipart

    return go_multipart(fields, image)


class Server:
    """The runner on `device`: a fresh `python -m runner_sdk serve` process, or (in_process) this one."""

    def __init__(self, spec: Spec, args, capacity: int = 1, env: dict | None = None, name: str = "runner"):
        self.spec, self.args, self.capacity, self.name = spec, args, capacity, name
        self.env = {"HF_HUB_OFFLINE": "1", **spec.env(args.scale), **(env or {})}
        self.proc = None
        self._ctx = None
        self.ready_s = None

    def __enter__(self) -> Server:
        t0 = time.perf_counter()
        if self.args.in_process:
            sys.path.insert(0, str(REPO / "tests"))
            from image_to_image.img_support import serve

            self._ctx = serve(self.spec.pipeline, self.spec.model_id, self.args.model_dir, env=self.env,
                              capacity=self.capacity, queue_size=8)
            self.url = self._ctx.__enter__().url
        else:
            self._spawn()
        self.ready_s = time.perf_counter() - t0
        return self

    def _spawn(self) -> None:
        import httpx

        from runner_sdk.testing import free_port

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PIPELINE": self.spec.pipeline, "MODEL_ID": self.spec.model_id,
               "MODEL_DIR": str(self.args.model_dir), **self.env}
        self.logfile = Path(self.args.logdir) / f"{self.name}.log"
        cmd = [sys.executable, "-m", "runner_sdk", "serve", "--device", self.args.device, "--host", "127.0.0.1",
               "--port", str(port), "--capacity", str(self.capacity), "--queue-size", "8"]
        self.proc = subprocess.Popen(cmd, env=env, cwd=str(REPO), stdout=open(self.logfile, "w"),
                                     stderr=subprocess.STDOUT)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 400:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.logfile.read_text()[-3000:]}")
            try:
                status = httpx.get(self.url + "/health", timeout=2).json()
                if status["status"] in {"IDLE", "OK"}:
                    return
                if status["status"] == "ERROR":
                    raise RuntimeError(f"runner ERROR: {status.get('error')}")
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError("not ready after 400 s")

    def info(self) -> dict:
        import httpx

        return httpx.get(self.url + "/runner/info", timeout=10).json()

    def __exit__(self, *exc) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def one_request(spec: Spec, url: str, i: int, scale: str) -> float:
    import httpx

    fields, image = spec.request(i, scale)
    body, ctype = multipart(fields, image)
    t0 = time.perf_counter()
    r = httpx.post(url + "/" + spec.pipeline, content=body, headers={"Content-Type": ctype}, timeout=600)
    if r.status_code != 200:
        raise RuntimeError(f"{r.status_code}: {r.text[:300]}")
    return time.perf_counter() - t0


def latency(samples: list[float], wall: float) -> dict:
    from runner_sdk.stats import percentile

    return {"p50_s": percentile(samples, 50), "p95_s": percentile(samples, 95), "per_s": len(samples) / wall,
            "n": len(samples)}


def drive(spec: Spec, url: str, n: int, clients: int, scale: str) -> dict:
    """n requests from `clients` threads; latency at the client, end to end."""
    lat: list[float] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        for i in range(k, n, clients):
            t = one_request(spec, url, i, scale)
            with lock:
                lat.append(t)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latency(lat, time.perf_counter() - t0)


def runner_row(spec: Spec, args, capacity: int, clients: int, name: str, env: dict | None = None) -> Callable[[], dict]:
    def go() -> dict:
        with Server(spec, args, capacity=capacity, env=env, name=name) as srv:
            one_request(spec, srv.url, 10_000, args.scale)  # not counted: first request after IDLE
            stats = drive(spec, srv.url, args.requests, clients, args.scale)
            info = srv.info()
            vram = info.get("vram") or {}
            return {"ready_s": srv.ready_s, **stats, "load_phases_s": (info.get("load") or {}).get("phases_s"),
                    "warm_vram": vram.get("warm"), "peak_vram": vram.get("peak"), "dtype": info.get("dtype"),
                    "optimisations_applied": info.get("optimisations_applied"), "notes": info.get("notes")}
    return go


def naive_row(spec: Spec, args, script: str, variant: str = "") -> Callable[[], dict]:
    """The naive baseline in a fresh process (`script --naive-worker`), or here with --in-process."""
    def go() -> dict:
        if args.in_process:
            return spec.naive(args.model_dir, args.requests, args.device, args.scale, variant)
        out = subprocess.run([sys.executable, script, "--naive-worker", "--model-dir", str(args.model_dir),
                              "--requests", str(args.requests), "--device", args.device, "--scale", args.scale,
                              "--variant", variant],
                             capture_output=True, text=True, cwd=str(REPO), timeout=500)
        for line in out.stdout.splitlines():
            if line.startswith("NAIVE_RESULT "):
                return json.loads(line.removeprefix("NAIVE_RESULT "))
        raise RuntimeError(f"naive baseline failed ({out.returncode}): {out.stderr[-2000:]}")
    return go


def gib(value) -> str:
    return f"{value / GB:.2f}" if isinstance(value, (int, float)) else "n/a"


def report(spec: Spec, results: dict, args) -> str:
    env = results["environment"]
    lines = [f"# {spec.title}", "",
             f"Machine: {env['device']}; torch {env['torch']}, diffusers {env['diffusers']}. Scale {args.scale}, "
             f"{args.requests} requests per row, total run {results['total_s']:.0f} s.",
             "Latency: end to end at the client for the runner (HTTP, multipart upload, PNG + JSON); the naive "
             "baseline has no HTTP layer. Peak VRAM: torch max allocated / reserved, reset before each request.",
             "", "| configuration | cold load to ready (s) | warm VRAM alloc (GiB) | peak VRAM alloc / reserved (GiB) "
             "| p50 (s) | p95 (s) | requests/s |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, row in results["rows"].items():
        if "skipped" in row:
            lines.append(f"| {name} | skipped: {row['skipped']} | | | | | |")
            continue
        warm, peak = row.get("warm_vram") or {}, row.get("peak_vram") or {}
        lines.append(f"| {name} | {row.get('ready_s') or float('nan'):.2f} | {gib(warm.get('torch_allocated'))} | "
                     f"{gib(peak.get('torch_allocated'))} / {gib(peak.get('torch_reserved'))} | {row['p50_s']:.3f} | "
                     f"{row['p95_s']:.3f} | {row['per_s']:.2f} |")
    lines += ["", "Cold load by phase (seconds) and optimisations:", ""]
    for name, row in results["rows"].items():
        phases = row.get("load_phases_s") or row.get("phases_s")
        if phases:
            lines.append(f"- {name}: " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items())
                         + (f"; applied {json.dumps(row['optimisations_applied'])}"
                            if row.get("optimisations_applied") else ""))
    return "\n".join(lines) + "\n"


def parse_args(spec: Spec, argv: list[str] | None) -> argparse.Namespace:
    import tempfile

    parser = argparse.ArgumentParser(description=spec.title)
    parser.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / f"{spec.pipeline}-bench")
    parser.add_argument("--scale", choices=["tiny", "full"], default="full")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--budget-s", type=float, default=420.0, help="skip sections that would start later")
    parser.add_argument("--out", type=Path, default=REPO / spec.default_out)
    parser.add_argument("--in-process", action="store_true", help="serve from this process (the CPU test)")
    parser.add_argument("--naive-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run(spec: Spec, script: str, argv: list[str] | None = None) -> dict:
    """The whole benchmark (see the module docstring); returns the results and writes `--out` (.md, .json)."""
    import tempfile

    global T_START
    T_START = time.perf_counter()  # the budget counts from this run, not from the module's import
    args = parse_args(spec, argv)
    if args.naive_worker:
        result = spec.naive(args.model_dir, args.requests, args.device, args.scale, args.variant)
        print("NAIVE_RESULT " + json.dumps(result), flush=True)
        return {}
    import diffusers
    import torch

    cuda = args.device.startswith("cuda")
    assert not cuda or torch.cuda.is_available(), "--device cuda needs a CUDA GPU (use --device cpu --scale tiny)"
    name = torch.cuda.get_device_properties(0).name if cuda else f"CPU ({os.cpu_count()} cores)"
    results: dict = {"environment": {"device": name, "torch": torch.__version__, "diffusers": diffusers.__version__},
                     "rows": {}}
    args.logdir = tempfile.mkdtemp(prefix=f"{spec.pipeline}-bench-logs-")
    marker = args.model_dir / f".synth-{args.scale}-{spec.model_id.replace('/', '--')}"
    if not marker.exists():
        log(f"synthesising {spec.model_id} at {args.scale} scale")
        spec.synth(spec.model_id, args.model_dir, args.scale)
        marker.write_text("ok")
    if cuda:
        torch.cuda.empty_cache()
    plan = [("runner, capacity 1", 60, runner_row(spec, args, 1, 1, "c1")),
            ("runner, capacity 2 (2 clients)", 60, runner_row(spec, args, 2, 2, "c2")),
            ("naive diffusers", 90, naive_row(spec, args, script)), *spec.extra(args)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for title, needed, fn in plan:
        if elapsed() + needed > args.budget_s:
            results["rows"][title] = {"skipped": f"time budget ({elapsed():.0f} s used of {args.budget_s:.0f} s)"}
            continue
        log(f"start {title}")
        try:
            results["rows"][title] = fn()
        except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others' numbers
            results["rows"][title] = {"skipped": f"failed: {type(exc).__name__}: {str(exc)[:300]}"}
        log(f"done {title}: {json.dumps(results['rows'][title], default=str)[:300]}")
        results["total_s"] = elapsed()
        args.out.write_text(report(spec, results, args))
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str))
    print(args.out.read_text())
    return results


def timed_calls(call: Callable[[int], None], n: int, device: str) -> dict:
    """The naive baselines' measurement: one unmeasured call, then n, with the peak VRAM of each."""
    import torch

    cuda = device.startswith("cuda")
    t = time.perf_counter()
    call(0)
    first = time.perf_counter() - t
    lat, peaks = [], []
    t_all = time.perf_counter()
    for i in range(n):
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        call(i + 1)
        if cuda:
            torch.cuda.synchronize()
            peaks.append({"torch_allocated": torch.cuda.max_memory_allocated(),
                          "torch_reserved": torch.cuda.max_memory_reserved()})
        lat.append(time.perf_counter() - t)
    out = {**latency(lat, time.perf_counter() - t_all), "first_request_s": first}
    if peaks:
        out["peak_vram"] = max(peaks, key=lambda p: p["torch_reserved"])
    return out


def png_data_url(image) -> str:
    """Pillow's default PNG + base64, as upstream's image_to_data_url."""
    import base64
    import io

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
