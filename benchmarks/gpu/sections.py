"""The GPU check's sections: each served pipeline's benchmark (`runner-sdk bench`'s measurement at capacity 1
and 2, then its naive baseline in the same run) and the GPU correctness tests (`pytest -m gpu`).

Each section is a function of the check's context returning its figures (a dict); raising marks it failed.
`cost_s` is what a section is expected to take (seconds, synthesis of its weights included) at full scale on
one H100/H200 and at tiny scale on a 2-core CPU: the check starts a section only when that much time is left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Section:
    """One unit of the check: a name, the pipelines it needs (all must be in the command's part), its expected
    cost {"full": s, "tiny": s} and the function that runs it."""

    name: str
    pipelines: tuple[str, ...]
    cost_s: dict[str, float]
    run: Callable[[Any], dict]
    kind: str = "bench"


@dataclass
class Context:
    """What the sections share: where results go, the scale and device, the time left, what was measured."""

    out: Path
    scale: str
    device: str
    requests: int
    synth_dir: Path
    model_dir: Path
    deadline: float  # time.monotonic() by which the whole check ends
    tests_slice_s: float = 200.0  # the most the correctness tests may take (see correctness())
    tests_k: str = ""  # pytest -k expression choosing among them ("" = all)
    details: Path = field(init=False)
    figures: list = field(default_factory=list)
    raw: list = field(default_factory=list)
    baselines: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Logs and sub-reports live outside --out (packed into details.tar.gz after every section): only 8
        # files come back from the GPU host, so --out never holds more, even when the check is cut short.
        import tempfile

        self.details = Path(tempfile.mkdtemp(prefix="gpu-check-details-"))

    def left(self) -> float:
        """Seconds left before the deadline."""
        return self.deadline - time.monotonic()

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")


def subprocess_env() -> dict[str, str]:
    """The check's environment for a child process: the repo importable (PYTHONPATH kept: on the GPU host it
    holds the carried wheels), unbuffered output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [env.get("PYTHONPATH", ""), str(REPO)] if p)
    env["PYTHONUNBUFFERED"] = "1"
    env["HF_HUB_OFFLINE"] = "1"
    return env


def child(ctx: Context, args: list[str], log_name: str, limit_s: float | None = None) -> str:
    """Run `python args...` from the repo root, its output into details/<log_name>.log; kill it at the deadline.

    Returns:
        Its stdout and stderr together.

    Raises:
        RuntimeError: it exited non-zero or ran past the time left.
    """
    timeout = max(5.0, min(limit_s or ctx.left(), ctx.left()))
    log = ctx.details / f"{log_name}.log"
    try:
        done = subprocess.run([sys.executable, *args], cwd=REPO, env=subprocess_env(), capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        log.write_text(f"{exc.stdout or ''}\n{exc.stderr or ''}")
        raise RuntimeError(f"overran the {timeout:.0f} s left (killed); log: details/{log.name}") from exc
    log.write_text(done.stdout + "\n" + done.stderr)
    if done.returncode:
        raise RuntimeError(f"exit {done.returncode}: {(done.stderr or done.stdout)[-1500:]}")
    return done.stdout + "\n" + done.stderr


# --- the runner's figures: `runner-sdk bench`, one pipeline at a time ----------------------------------------

# Requests per client at full scale where one request takes many seconds on an H100 (SVD: 25 frames of
# 1024x576, 25 steps; the x4 upscaler: 25 steps), so a section fits its share of the 9 minutes.
FULL_REQUESTS = {"image-to-video": 1, "upscale": 2}


def requests_for(ctx: Context, pipeline: str) -> int:
    """Requests per client for `pipeline` (the bench adds two unmeasured warm-up requests per server)."""
    return min(ctx.requests, FULL_REQUESTS.get(pipeline, ctx.requests)) if ctx.scale == "full" else ctx.requests


def measure_runner(ctx: Context, pipeline: str) -> dict:
    """`runner-sdk bench`'s measurement of one pipeline (capacity 1 and 2, fresh server processes on a GPU),
    appended to the check's results.json figures."""
    from runner_sdk.bench.run import SYNTHETIC_ENV, _measure_capacities, model_figures, prepare_weights
    from runner_sdk.bench.workloads import workload
    from runner_sdk.pipelines import PIPELINES

    model_id = PIPELINES[pipeline].demo_model_id
    t0 = time.perf_counter()
    serve_dir, weights = prepare_weights(pipeline, model_id, ctx.model_dir, ctx.synth_dir, ctx.scale)
    synth_s = time.perf_counter() - t0
    if ctx.cuda:
        import torch

        torch.cuda.empty_cache()  # the synthesis's tensors: the servers under test get the whole card
    env = dict(SYNTHETIC_ENV.get(pipeline, {})) if weights != "real" else {}
    if ctx.scale == "tiny":
        env["RUNNER_WARMUP"] = "false"  # as `runner-sdk bench --scale tiny`: the first request warms up
    runs = _measure_capacities(pipeline, model_id, serve_dir, ctx.device, 2, requests_for(ctx, pipeline),
                               ctx.scale, env)
    unit = workload(pipeline, ctx.scale).unit
    ctx.figures.append(model_figures(pipeline, model_id, weights, unit, runs))
    ctx.raw.append({"pipeline": pipeline, "model_id": model_id, "weights": weights, "unit": unit,
                    "synth_s": round(synth_s, 2),
                    "runs": [{**r.__dict__, "cold_load_s": r.cold_load_s, "spread": r.spread} for r in runs]})
    first = runs[0]
    return {"weights": weights, "synth_s": round(synth_s, 1), "cold_load_s": round(first.cold_load_s, 2),
            "p50_s": first.p(50), "units_per_s": first.units_per_s, "statuses": first.statuses,
            "serve_dir": str(serve_dir)}


def naive_generic(ctx: Context, pipeline: str, serve_dir: str) -> dict:
    """benchmarks/gpu/naive.py: the module's own naive baseline in a fresh process."""
    out = child(ctx, ["benchmarks/gpu/naive.py", pipeline, "--model-dir", serve_dir, "--requests",
                      str(requests_for(ctx, pipeline)), "--device", ctx.device, "--scale", ctx.scale], f"naive-{pipeline}")
    line = next((x for x in out.splitlines() if x.startswith("NAIVE_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"no NAIVE_RESULT line: {out[-800:]}")
    return json.loads(line.removeprefix("NAIVE_RESULT "))


def naive_llm(ctx: Context, serve_dir: str) -> dict:
    """benchmarks/llm/gpu_bench.py: the engine (bf16, int4) beside plain transformers `generate`, 1 and 8
    streams (TTFT, decode tokens/s, peak VRAM), bounded by the time left."""
    md = ctx.details / "llm-gpu-bench.md"
    tiny = ["--new-tokens", "8", "--prompt-tokens", "16", "--streams", "1,2"] if ctx.scale == "tiny" else \
        ["--streams", "1,8"]
    child(ctx, ["benchmarks/llm/gpu_bench.py", "--model-dir", serve_dir, "--scale", ctx.scale, "--device",
                ctx.device, "--variants", "bf16,int4", "--deadline-s", str(max(10, ctx.left() - 60)),
                "--out", str(md), *tiny], "llm-gpu-bench")
    report = json.loads(md.with_suffix(".json").read_text())
    return {"baseline": report.get("baseline"), "variants": {k: v.get("runs") for k, v in report["variants"].items()},
            "skipped": report.get("skipped"), "report": md.name}


def naive_audio(ctx: Context, serve_dir: str) -> dict:
    """benchmarks/audio_to_text/gpu_bench.py (in-process: the stock transformers pipeline beside the runner's
    batched decoding on 10 minutes of audio; the cold start is the bench section's own)."""
    md = ctx.details / "audio-to-text-gpu-bench.md"
    tiny = ["--minutes", "0.25", "--batches", "2,1", "--tokens", "8"] if ctx.scale == "tiny" else []
    child(ctx, ["benchmarks/audio_to_text/gpu_bench.py", "--model-dir", serve_dir, "--scale", ctx.scale,
                "--device", ctx.device, "--skip-cold", "--deadline-s", str(max(10, ctx.left() - 30)),
                "--workdir", str(ctx.synth_dir / "a2t-work"), "--out", str(md), *tiny], "audio-to-text-gpu-bench")
    report = json.loads(md.with_suffix(".json").read_text())
    return {k: v for k, v in report.items() if k not in ("date", "host")} | {"report": md.name}


def bench(pipeline: str) -> Callable[[Context], dict]:
    """A section: the runner's figures, then its naive baseline in the same run."""
    def go(ctx: Context) -> dict:
        runner = measure_runner(ctx, pipeline)
        serve_dir = runner.pop("serve_dir")
        if pipeline == "llm":
            baseline = naive_llm(ctx, serve_dir)
        elif pipeline == "audio-to-text":
            baseline = naive_audio(ctx, serve_dir)
        elif pipeline == "text-to-image" and not ctx.cuda:
            baseline = {"not_run": "text-to-image's naive baseline is CUDA only (gpu_bench.naive_worker)"}
        else:
            baseline = naive_generic(ctx, pipeline, serve_dir)
        ctx.baselines[pipeline] = baseline
        return {"runner": runner, "naive": baseline}
    return go


def correctness(ctx: Context) -> dict:
    """`pytest -m gpu tests/gpu` for the part's pipelines, at the check's scale and device; each test skips
    itself when its cost would pass the slice's deadline (tests/gpu/conftest.py), so the skips are listed.
    The slice (--tests-slice-s) bounds them: they start with as little as their section's cost, and the
    benchmarks after them keep their time."""
    junit = ctx.details / "pytest-gpu.xml"
    until = time.time() + min(ctx.left() - 5, ctx.tests_slice_s)
    os.environ.update({"GPU_CHECK_SCALE": ctx.scale, "GPU_CHECK_DEVICE": ctx.device,
                       "GPU_CHECK_DEADLINE": str(until),
                       "GPU_CHECK_SYNTH_DIR": str(ctx.synth_dir)})
    try:
        out = child(ctx, ["-m", "pytest", "-m", "gpu", "tests/gpu", "-q", "-rs", "-p", "no:cacheprovider",
                          f"--junitxml={junit}", "-o", "timeout=600", *(["-k", ctx.tests_k] if ctx.tests_k else [])],
                    "pytest-gpu")
        failed = False
    except RuntimeError as exc:
        out, failed = str(exc), True
    summary = next((x for x in reversed((ctx.details / "pytest-gpu.log").read_text().splitlines())
                    if " passed" in x or " failed" in x or " error" in x), out[-300:])
    skipped = [x for x in (ctx.details / "pytest-gpu.log").read_text().splitlines() if x.startswith("SKIPPED")]
    if failed:
        raise RuntimeError(f"pytest -m gpu: {summary.strip()} (details/pytest-gpu.log)")
    return {"summary": summary.strip("= "), "skipped": skipped}


def all_sections() -> list[Section]:
    """Every section, most valuable first: the three runners with targets in the issue (text-to-image,
    the LLM, audio-to-text), then the correctness tests, then the other six pipelines."""
    costs = {  # seconds: full scale on one H100/H200 (synthesis included; estimates, not yet measured there),
        # tiny on a 2-core CPU
        "text-to-image": (80, 30), "llm": (150, 35), "audio-to-text": (110, 30), "image-to-image": (60, 25),
        "image-to-video": (160, 25), "upscale": (80, 25), "image-to-text": (40, 20),
        "segment-anything-2": (40, 20), "text-to-speech": (30, 20)}
    first = ["text-to-image", "llm", "audio-to-text"]
    rest = ["image-to-image", "image-to-video", "upscale", "image-to-text", "segment-anything-2", "text-to-speech"]
    sections = [Section(f"bench {p}", (p,), {"full": costs[p][0], "tiny": costs[p][1]}, bench(p)) for p in first]
    sections.append(Section("correctness (pytest -m gpu)", (), {"full": 60, "tiny": 30}, correctness, "tests"))
    sections += [Section(f"bench {p}", (p,), {"full": costs[p][0], "tiny": costs[p][1]}, bench(p)) for p in rest]
    return sections
