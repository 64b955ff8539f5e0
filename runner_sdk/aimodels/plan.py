"""Plan which models to keep warm or cold on which GPU, starting from demand, as the operator guide teaches.

The rules, in the order they apply (plan.md explains each decision with its numbers):

1. Demand first: the pipelines the operator wants to earn from, in order (`--demand`, `--demand-file`);
   without one, the guide's tier strategy for the biggest GPU (see `demand.default_demand`). Earlier items
   get the memory first.
2. Figures: measured (`--results` from `runner-sdk bench`) where there are any for the model, else the
   committed reference table, else an estimate by architecture (figures.py); estimates are labelled.
3. Warm: a GPU takes a warm model when the peaks of all its warm models together, x (1 + headroom), fit
   its memory (peak, not warm: a runner that fits idle but not while it works fails on its first big
   request), and the GPU's cold room still holds. Co-warming a small model beside a large one is exactly
   this test. An LLM that does not fit in bf16 is tried as QUANTIZE=int8, then int4.
4. GPU choice: diffusion beside diffusion, other models away from diffusion (the guide's "diffusion on
   GPU0, Whisper + LLM on GPU1"), then the GPU with the fewest models, then the most memory left.
5. Cold: an entry go-livepeer loads on demand in a managed container (no url). It fits when the idle
   (warm) footprints of the GPU's warm models plus its own peak fit the memory, and the GPU has no managed
   warm container (go-livepeer runs one managed container per GPU at a time). A warm-wanted model that
   does not fit warm falls back to cold.
6. Capacity: the best measured one (a gain within the repeat noise does not count), lowered when it does
   not fit; on cards of 40 GiB and more, estimated runners get capacity > 1 while the memory allows.
7. A demand item that fits nowhere is left out, with the reason and what would change it.

Served pipelines (this build has a runner) become external runners (`url`, one container per model, each
seeing one GPU); the others are go-livepeer-managed containers. `managed=True` makes every entry managed.
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
from . import figures as arch
from .demand import Demand, default_demand
from .results import BenchResults, ModelFigures, load_reference

PRICE_PLACEHOLDERS: dict[str, dict[str, Any]] = {
    "text-to-image": {"price_per_unit": 4768371},
    "image-to-image": {"price_per_unit": 4768371},
    "audio-to-text": {"price_per_unit": 12882811},
    "llm": {"price_per_unit": 0.18, "currency": "USD", "pixels_per_unit": 1000000},
}
DEFAULT_HEADROOM = 0.20
DEFAULT_PORT_BASE = 9000
DEFAULT_IMAGE = "livepeer-runner-sdk"
DIFFUSION = pipelines.names(diffusion=True)
GiB = 1024**3
LARGE_CARD = 39 * GiB  # capacity > 1 for estimated runners from here (A100 40 GB and up)
MAX_CAPACITY = 4

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
_BYTE_SIZE = TypeAdapter(ByteSize)


def parse_size(text: str) -> int:
    """A memory size with its unit (`--gpu 24GiB`), in bytes.

    GB (or G) is 10^9 bytes, GiB (or Gi) 2^30, likewise K, M, T; case-insensitive. A number without a unit is
    an error: "24" is not 24 GB.

    Args:
        text: e.g. "24GiB", "12GB", "80 gib".

    Returns:
        The size in bytes (fractions of a byte dropped).

    Raises:
        ValueError: not a size, or no unit.
    """
    bad = f"not a memory size: {text!r} (examples: 24GiB, 12GB, 80GiB)"
    m = _SIZE.match(text)
    if m is None:
        raise ValueError(bad)
    number, unit = m.groups()
    if not unit:
        raise ValueError(f"{text!r} has no unit: write 24GiB (a card sold as '24 GB' has 24 GiB) or 24GB "
                         "(10^9 bytes)")
    if re.fullmatch(r"[KMGTPE]i", unit, re.IGNORECASE):
        unit += "B"
    if unit.upper() in ("B",):
        raise ValueError(f"{text!r}: give GPU memory in GiB or GB")
    try:
        return int(_BYTE_SIZE.validate_python(number + unit))
    except ValueError:
        raise ValueError(bad) from None


def fmt_gib(n: int | float) -> str:
    """Bytes as "12.0 GiB"."""
    return f"{n / GiB:.1f} GiB"


@dataclass
class GPU:
    """One GPU: its device index, memory, name, and the size as the operator wrote it (for plan.md)."""

    index: int
    memory_bytes: int
    name: str = ""
    given: str = ""

    @property
    def label(self) -> str:
        return f"GPU {self.index}" + (f" ({self.name}, {fmt_gib(self.memory_bytes)})" if self.name
                                      else f" ({fmt_gib(self.memory_bytes)})")


def gpu_from_text(index: int, text: str) -> GPU:
    """A GPU from `--gpu SIZE` or `--gpu NAME=SIZE` (e.g. "RTX 4090=24GiB").

    Args:
        index: the device index (the order of --gpu).
        text: SIZE or NAME=SIZE.

    Returns:
        The GPU, with the size as written kept for plan.md.

    Raises:
        ValueError: the size does not parse.
    """
    name, _, size = text.rpartition("=")
    return GPU(index, parse_size(size), name.strip(), size.strip())


def detect_gpus() -> list[GPU]:
    """GPUs as NVML numbers them (nvidia-smi's and `docker run --gpus device=N`'s order).

    Raises:
        NvmlUnavailable: no NVML (no driver, no GPU, or nvidia-ml-py missing).
    """
    return [GPU(g.index, g.memory_total, g.name) for g in nvml.gpus()]


@dataclass
class Placement:
    """One aiModels.json entry of the plan."""

    model: ModelFigures
    gpu: GPU
    capacity: int
    need_bytes: int
    peak_bytes: int
    port: int = 0
    mode: str = "warm"
    external: bool = True
    quantize: str = ""
    warm_bytes: int = 0
    why: str = ""

    @property
    def name(self) -> str:
        short = re.sub(r"[^a-z0-9]+", "-", self.model.model_id.split("/")[-1].lower()).strip("-")
        return f"lp-{self.model.pipeline}-{short}-gpu{self.gpu.index}"


@dataclass
class LeftOut:
    """A demand item the plan could not place."""

    pipeline: str
    model_id: str
    why: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.pipeline, self.model_id)


@dataclass
class Plan:
    """GPUs, placements, what was left out, and the notes plan.md shows."""

    gpus: list[GPU]
    headroom: float
    managed: bool
    source: str
    placements: list[Placement] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)
    demand: list[Demand] = field(default_factory=list)
    tier: str = ""

    def on(self, gpu: GPU, mode: str | None = None) -> list[Placement]:
        return [p for p in self.placements if p.gpu is gpu and (mode is None or p.mode == mode)]

    def used(self, gpu: GPU) -> int:
        """Memory the warm models of `gpu` need at peak, with headroom."""
        return sum(p.need_bytes for p in self.on(gpu, "warm"))

    def free(self, gpu: GPU) -> int:
        return gpu.memory_bytes - self.used(gpu)

    def idle(self, gpu: GPU) -> int:
        return sum(p.warm_bytes for p in self.on(gpu, "warm"))

    def cold_peak(self, gpu: GPU) -> int:
        return max((p.peak_bytes for p in self.on(gpu, "cold")), default=0)

    def managed_warm(self, gpu: GPU) -> bool:
        return any(not p.external for p in self.on(gpu, "warm"))

    def fits_warm(self, gpu: GPU, peak: int, warm: int, external: bool) -> bool:
        """Warm peaks x (1 + headroom) fit, the cold room holds, and a managed one has the GPU's slot."""
        peaks = sum(p.peak_bytes for p in self.on(gpu, "warm")) + peak
        if int(peaks * (1 + self.headroom)) > gpu.memory_bytes:
            return False
        if self.idle(gpu) + warm + self.cold_peak(gpu) > gpu.memory_bytes:
            return False
        return external or not any(not p.external for p in self.on(gpu))

    def fits_cold(self, gpu: GPU, peak: int) -> bool:
        """Idle warm footprints + this peak fit, and go-livepeer's managed slot on the GPU is free."""
        return not self.managed_warm(gpu) and self.idle(gpu) + peak <= gpu.memory_bytes


def figures_for(results: BenchResults | None, item: Demand, quantize: str = "") -> ModelFigures | None:
    """Measured figures, else the reference table, else an estimate by architecture (bf16 unless `quantize`).

    Args:
        results: bench results, or None.
        item: the demand item.
        quantize: "", "int8" or "int4" (llm only; quantised variants are always estimates).

    Returns:
        Figures with VRAM numbers, or None.
    """
    if not quantize:
        for source in (results, load_reference()):
            found = source.find(item.pipeline, item.model_id) if source is not None else None
            if found is not None and arch.peak_at(found, 1) is not None:
                return found
    return arch.estimate(item.pipeline, item.model_id, quantize)


def make_plan(results: BenchResults | None, gpus: list[GPU], *, demand: list[Demand] | None = None,
              headroom: float = DEFAULT_HEADROOM, capacities: dict[str, int] | None = None,
              managed: bool = False, port_base: int = DEFAULT_PORT_BASE) -> Plan:
    """Place the demand on `gpus`. See the module doc for the rules.

    Args:
        results: bench results (measured figures win over the reference table and estimates), or None.
        gpus: the GPUs, in device order.
        demand: what to serve, in order; default: the guide's tier strategy for the biggest GPU.
        headroom: margin over the warm peaks, as a fraction.
        capacities: a fixed capacity per pipeline (not lowered, not raised).
        managed: every entry a go-livepeer-managed container (no url).
        port_base: the first host port of the external runners.

    Returns:
        The plan.

    Raises:
        ValueError: no GPUs or a negative headroom.
    """
    from .placing import place_all

    if not gpus:
        raise ValueError("no GPUs: give --gpu SIZE (e.g. --gpu 24GiB) or run where NVML sees a GPU")
    if headroom < 0:
        raise ValueError("headroom must be >= 0")
    tier = ""
    if demand is None:
        tier, demand = default_demand([g.memory_bytes for g in gpus])
    source = results.source if results is not None else "estimate"
    plan = Plan(gpus=gpus, headroom=headroom, managed=managed, source=source, demand=list(demand), tier=tier)
    place_all(plan, results, capacities or {})
    plan.placements.sort(key=lambda p: (p.gpu.index, p.mode != "warm"))
    port = port_base
    for p in plan.placements:
        if p.external:
            p.port, port = port, port + 1
    return plan


def aimodels_entries(plan: Plan, *, token: str, host: str = "127.0.0.1", sfast: bool = False,
                     prices: dict[str, dict[str, Any]] | None = None,
                     urls: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """aiModels.json entries (prices are placeholders unless given).

    Args:
        plan: the plan.
        token: the runners' shared bearer token.
        host: where go-livepeer reaches the external runners (their host ports).
        sfast: SFAST for managed warm diffusion entries.
        prices: price fields per pipeline.
        urls: a url per placement index (compose service names), instead of host:port.

    Returns:
        The entries, in the plan's order (managed warm ones in -nvidia order).
    """
    entries = []
    for i, p in enumerate(plan.placements):
        entry: dict[str, Any] = {"pipeline": p.model.pipeline, "model_id": p.model.model_id}
        if p.external:
            entry["url"] = (urls or {}).get(i) or f"http://{host}:{p.port}"
            entry["token"] = token
            entry["capacity"] = p.capacity
        if p.mode == "warm":
            entry["warm"] = True
            if not p.external and sfast and p.model.pipeline in DIFFUSION:
                entry["optimization_flags"] = {"SFAST": True}
        entry.update((prices or PRICE_PLACEHOLDERS).get(p.model.pipeline, {"price_per_unit": 1}))
        entries.append(entry)
    return entries


def runner_env(p: Placement, sfast: bool = False) -> list[tuple[str, str]]:
    """The env of an external runner container (the settings' names).

    Args:
        p: an external placement.
        sfast: SFAST for diffusion runners.

    Returns:
        (name, value) pairs: PIPELINE, MODEL_ID, MODEL_DIR, RUNNER_CAPACITY, QUANTIZE and SFAST where they apply.
    """
    env = [("PIPELINE", p.model.pipeline), ("MODEL_ID", p.model.model_id), ("MODEL_DIR", "/models"),
           ("RUNNER_CAPACITY", str(p.capacity))]
    if p.quantize:
        env.append(("QUANTIZE", p.quantize))
    if sfast and p.model.pipeline in DIFFUSION:
        env.append(("SFAST", "true"))
    return env


def docker_run_lines(plan: Plan, *, host: str = "127.0.0.1", image: str = DEFAULT_IMAGE,
                     model_dir: str = "/var/lib/livepeer/models", sfast: bool = False) -> list[str]:
    """A shell script body: one `docker run` per external runner. The token comes from the environment.

    Args:
        plan: the plan.
        host: where go-livepeer reaches the runners (loopback: ports published on 127.0.0.1 only).
        image: the runner image repository (tag = pipeline).
        model_dir: the host folder mounted at /models.
        sfast: SFAST for diffusion runners.

    Returns:
        Lines (comments and commands); empty when the plan has no external runner.
    """
    external = [p for p in plan.placements if p.external]
    if not external:
        return []
    publish_ip = "127.0.0.1:" if host in ("127.0.0.1", "localhost") else ""
    lines = [
        "# Runners for the planned aiModels.json: one container per model, each seeing one GPU.",
        "# AUTH_TOKEN must hold the token written into aiModels.json (export it before running this).",
        ': "${AUTH_TOKEN:?export AUTH_TOKEN first}"',
    ]
    for p in external:
        opts = [("--name", p.name), ("--restart", "unless-stopped"), ("--gpus", f"device={p.gpu.index}"),
                ("-p", f"{publish_ip}{p.port}:8000"), ("-v", f"{model_dir}:/models")]
        opts += [("-e", "AUTH_TOKEN")] + [("-e", f"{k}={v}") for k, v in runner_env(p, sfast)]
        parts = ["docker run -d"] + [f"{o} {shlex.quote(v)}" for o, v in opts] + [shlex.quote(f"{image}:{p.model.pipeline}")]
        lines.append(f"# {p.gpu.label}: {p.model.pipeline} {p.model.model_id}, peak {fmt_gib(p.peak_bytes)}")
        lines.append(" \\\n    ".join(parts))
    return lines


def nvidia_list(plan: Plan) -> list[int]:
    """The -nvidia GPUs: those with managed warm containers (in entry order), then those with cold room.

    Args:
        plan: the plan.

    Returns:
        GPU indices; empty when every entry is an external runner.
    """
    warm = [g.index for g in plan.gpus if plan.managed_warm(g)]
    cold = [g.index for g in plan.gpus if plan.on(g, "cold") and g.index not in warm]
    return warm + cold


def go_livepeer_flags(plan: Plan, image: str = DEFAULT_IMAGE) -> str:
    """The go-livepeer flags for the plan: -nvidia for managed containers, image overrides for our runners.

    Args:
        plan: the plan.
        image: the runner image repository.

    Returns:
        The flags as one shell-quoted line.
    """
    ours = sorted({p.model.pipeline for p in plan.placements} & set(pipelines.names(served_only=True)))
    overrides = {"batch": {p: f"{image}:{p}" for p in ours}}
    flags = "-aiWorker -aiModels /path/to/aiModels.json"
    if nvidia_list(plan):
        flags += " -nvidia " + ",".join(map(str, nvidia_list(plan)))
    return flags + f" -aiRunnerImageOverrides {shlex.quote(json.dumps(overrides, separators=(',', ':')))}"


def new_token() -> str:
    """A fresh random bearer token for the runners and aiModels.json."""
    return secrets.token_urlsafe(24)
