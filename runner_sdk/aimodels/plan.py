"""Plan which models to keep warm on which GPU, and write the aiModels.json and `docker run` lines for it.

The packing is deliberately simple, so an operator can check it by hand:

1. Each model needs `peak VRAM at its capacity x (1 + headroom)`. Peak, not warm: a runner that fits idle
   but not while it works fails on its first big request. The capacity is the one with the best measured
   throughput (or `--capacity`), lowered to the next measured one, down to 1, when it does not fit. The
   headroom (default 20 %) covers allocator fragmentation, LoRA adapters, larger images and what the figures
   do not see.
2. Models are placed largest first (first-fit decreasing, the classic heuristic: big items are the hard ones).
3. Each goes onto the GPU with the most memory left that still fits it ("worst fit"), which spreads runners
   over the GPUs so that two runners share a GPU's compute only when they must.
4. A model that fits nowhere is left out, with the reason; nothing is written for it.

External mode (default): one runner container per planned model, each seeing exactly one GPU
(`--gpus device=N`), several runners may share a GPU; aiModels.json entries point `url` at them with a shared
token. Managed mode (`managed=True`): go-livepeer starts the containers itself, one warm container per GPU, so
at most one model per GPU; entries have no url and may carry optimization_flags.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
from dataclasses import dataclass, field
from typing import Any

from pydantic import ByteSize, TypeAdapter

from .. import nvml, pipelines
from .results import BenchResults, ModelFigures

# Placeholder prices (the contract's example values). Set your own: see the operator guide's pricing notes.
PRICE_PLACEHOLDERS: dict[str, dict[str, Any]] = {
    "text-to-image": {"price_per_unit": 4768371},
    "audio-to-text": {"price_per_unit": 12882811},
    "llm": {"price_per_unit": 0.18, "currency": "USD", "pixels_per_unit": 1000000},
}
DEFAULT_HEADROOM = 0.20
# Host ports for external runners: away from go-livepeer's managed container ports (8000/8400/8500 + GPU
# offset) and its own 7935/8935.
DEFAULT_PORT_BASE = 9000
DEFAULT_IMAGE = "livepeer-runner-sdk"
# Pipelines SFAST applies to (the pipeline table's diffusion ones).
DIFFUSION = pipelines.names(diffusion=True)

# A number and an optional unit, nothing else around it (ByteSize alone would take "24GiB of RAM").
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
_BYTE_SIZE = TypeAdapter(ByteSize)


def parse_size(text: str) -> int:
    """A memory size as an operator writes it (`--gpu 24GiB`), in bytes.

    Units are pydantic's `ByteSize` ones, case-insensitive: GB (or G) means 10^9 and GiB (or Gi) 2^30, likewise
    K, M, T; a bare number is bytes.

    Args:
        text: e.g. "24GiB", "12GB", "80 gib", "1024".

    Returns:
        The size in bytes (fractions of a byte dropped).

    Raises:
        ValueError: not a size.
    """
    bad = f"not a memory size: {text!r} (examples: 24GiB, 12GB, 80GiB)"
    m = _SIZE.match(text)
    if m is None:
        raise ValueError(bad)
    number, unit = m.groups()
    if re.fullmatch(r"[KMGTPE]i", unit, re.IGNORECASE):
        unit += "B"  # "24Gi": ByteSize only knows "GiB"
    try:
        return int(_BYTE_SIZE.validate_python(number + unit))
    except ValueError:  # pydantic's ValidationError is one
        raise ValueError(bad) from None


def fmt_gib(n: int | float) -> str:
    """Bytes as "12.0 GiB"."""
    return f"{n / 1024**3:.1f} GiB"


@dataclass
class GPU:
    index: int
    memory_bytes: int
    name: str = ""

    @property
    def label(self) -> str:
        return f"GPU {self.index}" + (f" ({self.name}, {fmt_gib(self.memory_bytes)})" if self.name
                                      else f" ({fmt_gib(self.memory_bytes)})")


def detect_gpus() -> list[GPU]:
    """GPUs as NVML numbers them (the same order as nvidia-smi and `docker run --gpus device=N`).

    Raises:
        NvmlUnavailable: no NVML (no driver, no GPU, or nvidia-ml-py missing).
    """
    return [GPU(g.index, g.memory_total, g.name) for g in nvml.gpus()]


@dataclass
class Placement:
    model: ModelFigures
    gpu: GPU
    capacity: int
    need_bytes: int
    peak_bytes: int
    port: int = 0

    @property
    def name(self) -> str:
        short = re.sub(r"[^a-z0-9]+", "-", self.model.model_id.split("/")[-1].lower()).strip("-")
        return f"lp-{self.model.pipeline}-{short}-gpu{self.gpu.index}"


@dataclass
class Plan:
    gpus: list[GPU]
    headroom: float
    managed: bool
    source: str
    placements: list[Placement] = field(default_factory=list)
    left_out: list[tuple[ModelFigures, str]] = field(default_factory=list)

    def used(self, gpu: GPU) -> int:
        return sum(p.need_bytes for p in self.placements if p.gpu is gpu)

    def free(self, gpu: GPU) -> int:
        return gpu.memory_bytes - self.used(gpu)


def make_plan(results: BenchResults, gpus: list[GPU], *, headroom: float = DEFAULT_HEADROOM,
              models: list[tuple[str, str]] | None = None, capacities: dict[str, int] | None = None,
              managed: bool = False, port_base: int = DEFAULT_PORT_BASE) -> Plan:
    """Place the chosen models on `gpus`. See the module doc for the rules.

    Args:
        results: bench results (or the reference estimates) with each model's VRAM figures.
        gpus: the GPUs to plan for, in device order.
        headroom: margin over peak VRAM, as a fraction.
        models: (pipeline, model_id) pairs to place; default: every model in `results`.
        capacities: a fixed capacity per pipeline (not lowered when it does not fit).
        managed: go-livepeer-managed containers (one warm model per GPU) instead of external runners.
        port_base: the first host port of the external runners.

    Returns:
        The placements and the models left out, with the reason.

    Raises:
        ValueError: no GPUs, a negative headroom, or a chosen model without figures in `results`.
    """
    if not gpus:
        raise ValueError("no GPUs: give --gpu SIZE (e.g. --gpu 24GiB) or run where NVML sees a GPU")
    if headroom < 0:
        raise ValueError("headroom must be >= 0")
    plan = Plan(gpus=gpus, headroom=headroom, managed=managed, source=results.source)
    chosen: list[ModelFigures] = []
    for key in models or [m.key for m in results.models]:
        figures = results.find(*key)
        if figures is None:
            known = ", ".join(f"{p}:{m}" for p, m in (x.key for x in results.models))
            raise ValueError(f"no figures for {key[0]}:{key[1]} in the results (have: {known})")
        chosen.append(figures)

    # Per model, the capacities to try: the chosen one first, then smaller measured ones down to 1, so a model
    # whose best-throughput capacity does not fit still gets a place at a lower capacity.
    sized: list[tuple[list[tuple[int, int, int]], ModelFigures]] = []
    for figures in chosen:
        first = 1 if managed else (capacities or {}).get(figures.pipeline) or figures.best_capacity()
        fixed = managed or figures.pipeline in (capacities or {})
        lower = {r.capacity for r in figures.by_capacity if r.capacity < first} | ({1} if first > 1 else set())
        tries = [first] if fixed else [first, *sorted(lower, reverse=True)]
        options = [(int(peak * (1 + headroom)), peak, c) for c in tries if (peak := figures.peak_at(c)) is not None]
        if not options:
            plan.left_out.append((figures, "no VRAM figures (not measured on this machine)"))
            continue
        sized.append((options, figures))

    for options, figures in sorted(sized, key=lambda s: (-s[0][0][0], s[1].key)):
        taken = {p.gpu.index for p in plan.placements} if managed else set()
        fit = [(need, peak, c, g) for need, peak, c in options for g in gpus
               if plan.free(g) >= need and g.index not in taken]
        if not fit:
            need, peak, _c = options[-1]
            biggest = max(gpus, key=plan.free)
            why = (f"needs {fmt_gib(need)} (peak {fmt_gib(peak)} + {headroom:.0%} headroom); "
                   f"the most free on any GPU is {fmt_gib(plan.free(biggest))}")
            if managed and plan.free(biggest) >= need:
                why = "managed mode keeps one warm container per GPU, and every GPU already has one"
            plan.left_out.append((figures, why))
            continue
        # The first capacity that fits anywhere, on the GPU with the most memory left.
        best_capacity = fit[0][2]
        need, peak, capacity, gpu = max((f for f in fit if f[2] == best_capacity),
                                        key=lambda f: (plan.free(f[3]), -f[3].index))
        plan.placements.append(Placement(figures, gpu, capacity, need, peak))

    plan.placements.sort(key=lambda p: (p.gpu.index, p.model.key))
    for i, p in enumerate(plan.placements):
        p.port = port_base + i
    return plan


def aimodels_entries(plan: Plan, *, token: str, host: str = "127.0.0.1", sfast: bool = False,
                     prices: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """aiModels.json entries for the plan (prices are placeholders unless given)."""
    entries = []
    for p in plan.placements:
        entry: dict[str, Any] = {"pipeline": p.model.pipeline, "model_id": p.model.model_id}
        if not plan.managed:
            entry["url"] = f"http://{host}:{p.port}"
            entry["token"] = token
        entry["capacity"] = p.capacity
        entry["warm"] = True
        if plan.managed and sfast and p.model.pipeline in DIFFUSION:
            entry["optimization_flags"] = {"SFAST": True}
        entry.update((prices or PRICE_PLACEHOLDERS).get(p.model.pipeline, {"price_per_unit": 1}))
        entries.append(entry)
    return entries


def docker_run_lines(plan: Plan, *, host: str = "127.0.0.1", image: str = DEFAULT_IMAGE,
                     model_dir: str = "/var/lib/livepeer/models", sfast: bool = False) -> list[str]:
    """A shell script body: one `docker run` per placed model. The token comes from the environment."""
    if plan.managed:
        return []
    publish_ip = "127.0.0.1:" if host in ("127.0.0.1", "localhost") else ""
    lines = [
        "# Runners for the planned aiModels.json: one container per model, each seeing one GPU.",
        "# AUTH_TOKEN must hold the token written into aiModels.json (export it before running this).",
        ': "${AUTH_TOKEN:?export AUTH_TOKEN first}"',
    ]
    for p in plan.placements:
        env = [("PIPELINE", p.model.pipeline), ("MODEL_ID", p.model.model_id), ("MODEL_DIR", "/models"),
               ("RUNNER_CAPACITY", str(p.capacity))]
        if sfast and p.model.pipeline in DIFFUSION:
            env.append(("SFAST", "true"))
        opts = [("--name", p.name), ("--restart", "unless-stopped"), ("--gpus", f"device={p.gpu.index}"),
                ("-p", f"{publish_ip}{p.port}:8000"), ("-v", f"{model_dir}:/models")]
        opts += [("-e", "AUTH_TOKEN")] + [("-e", f"{k}={v}") for k, v in env]
        parts = ["docker run -d"] + [f"{o} {shlex.quote(v)}" for o, v in opts] + [shlex.quote(f"{image}:{p.model.pipeline}")]
        lines.append(f"# {p.gpu.label}: {p.model.pipeline} {p.model.model_id}, peak {fmt_gib(p.peak_bytes)}")
        lines.append(" \\\n    ".join(parts))
    return lines


def explain(plan: Plan) -> str:
    """What was placed where and why, as Markdown-ish text for the operator."""
    out = [f"Plan ({'managed containers' if plan.managed else 'external runners'}), "
           f"figures: {plan.source}{' -- ESTIMATES, not measurements' if plan.source == 'estimate' else ''}; "
           f"each model needs peak VRAM x {1 + plan.headroom:.2f} (headroom {plan.headroom:.0%}); "
           "largest first, onto the GPU with the most memory left."]
    for gpu in plan.gpus:
        here = [p for p in plan.placements if p.gpu is gpu]
        out.append(f"- {gpu.label}: {fmt_gib(plan.used(gpu))} planned, {fmt_gib(plan.free(gpu))} left")
        for p in here:
            port = "" if plan.managed else f", port {p.port}"
            out.append(f"    - {p.model.pipeline} {p.model.model_id}: capacity {p.capacity}, "
                       f"peak {fmt_gib(p.peak_bytes)}, needs {fmt_gib(p.need_bytes)}{port}")
    for figures, why in plan.left_out:
        out.append(f"- left out: {figures.pipeline} {figures.model_id}: {why}")
    if plan.left_out:
        out.append("To keep other models instead, choose them with --model PIPELINE:MODEL_ID (repeatable).")
    if plan.managed:
        out.append("go-livepeer gives warm managed containers the GPUs of -nvidia in entry order, so the entries "
                   "are written in GPU order; keep that order and the -nvidia list as printed.")
    out.append("Prices are placeholders: set price_per_unit for your market before going live.")
    return "\n".join(out)


def go_livepeer_flags(plan: Plan, image: str = DEFAULT_IMAGE) -> str:
    """Managed mode: the go-livepeer flags that make it start our images on the planned GPUs."""
    overrides = {"batch": {p: f"{image}:{p}" for p in sorted({x.model.pipeline for x in plan.placements})}}
    gpus = ",".join(str(g.index) for g in plan.gpus)
    return (f"-aiWorker -aiModels /path/to/aiModels.json -nvidia {gpus} "
            f"-aiRunnerImageOverrides {shlex.quote(json.dumps(overrides, separators=(',', ':')))}")


def new_token() -> str:
    """A fresh random bearer token for the runners and aiModels.json."""
    return secrets.token_urlsafe(24)
