"""Bench results: the schema `runner-sdk bench` writes and `runner-sdk aimodels plan` reads.

One file describes one GPU (or the CPU) and holds one record per pipeline and model:

    {
      "schema": "runner-sdk-bench/1",
      "source": "measured",                       # or "estimate" (the committed reference table)
      "machine": {"gpu_name": "NVIDIA H100 80GB HBM3", "gpu_memory_bytes": 85520809984, "host": "..."},
      "models": [
        {
          "pipeline": "text-to-image",
          "model_id": "ByteDance/SDXL-Lightning-4step",
          "warm_vram_bytes": 8589934592,          # resident and idle (NVML, whole process); null = not measured
          "peak_vram_bytes": 12884901888,         # highest during inference at capacity 1; null = not measured
          "cold_load_s": 21.5,                    # process start to ready
          "latency_s": {"p50": 1.1, "p95": 1.3},  # one request at capacity 1
          "throughput": {"unit": "pixels", "units_per_s": 950000.0},
          "by_capacity": [                        # optional: the same runner at capacity 1..N
            {"capacity": 1, "peak_vram_bytes": 12884901888, "units_per_s": 950000.0, "latency_p50_s": 1.1}
          ],
          "weights": "real",                      # real | synthetic-full | synthetic-tiny
          "source": "measured",
          "notes": "..."
        }
      ]
    }

Units of throughput are the pipeline's pricing units: output pixels (text-to-image), audio milliseconds
(audio-to-text), tokens (llm). VRAM figures are null when not measured (CPU runs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..pipelines import PIPELINES

SCHEMA = "runner-sdk-bench/1"
REFERENCE_PATH = Path(__file__).with_name("reference.json")
# What throughput is counted in, per pipeline: its pricing unit (the pipeline table).
PRICING_UNITS = {name: p.pricing_unit for name, p in PIPELINES.items()}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class Latency(_Model):
    p50: float = Field(ge=0)
    p95: float = Field(ge=0)


class Throughput(_Model):
    unit: str = Field(description="the pipeline's pricing unit (pixels, audio_ms, tokens, characters...)")
    units_per_s: float = Field(ge=0)


class CapacityRun(_Model):
    capacity: int = Field(ge=1)
    peak_vram_bytes: int | None = Field(None, ge=0)
    units_per_s: float | None = Field(None, ge=0)
    latency_p50_s: float | None = Field(None, ge=0)
    latency_p95_s: float | None = Field(None, ge=0)
    spread: float | None = Field(None, ge=0, description="(max - min) / median of throughput over the repeats")


class ModelFigures(_Model):
    pipeline: str
    model_id: str
    warm_vram_bytes: int | None = Field(None, ge=0)
    peak_vram_bytes: int | None = Field(None, ge=0)
    cold_load_s: float | None = Field(None, ge=0)
    latency_s: Latency | None = None
    throughput: Throughput | None = None
    by_capacity: list[CapacityRun] = Field(default_factory=list)
    weights: Literal["real", "synthetic-full", "synthetic-tiny", "unknown"] = "unknown"
    source: Literal["measured", "estimate"] = "measured"
    notes: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.pipeline, self.model_id)

    def peak_at(self, capacity: int) -> int | None:
        """Peak VRAM at a capacity: the measured run if there is one, else the capacity-1 peak."""
        for run in self.by_capacity:
            if run.capacity == capacity and run.peak_vram_bytes is not None:
                return run.peak_vram_bytes
        return self.peak_vram_bytes if self.peak_vram_bytes is not None else self.warm_vram_bytes

    def best_capacity(self) -> int:
        """The capacity with the highest measured throughput (the smaller one on a tie); 1 without data."""
        runs = [r for r in self.by_capacity if r.units_per_s is not None]
        if not runs:
            return 1
        return max(runs, key=lambda r: (r.units_per_s, -r.capacity)).capacity


class Machine(_Model):
    gpu_name: str | None = None
    gpu_memory_bytes: int | None = Field(None, ge=0)
    host: str | None = None


class BenchResults(_Model):
    schema_: str = Field(SCHEMA, alias="schema")
    source: Literal["measured", "estimate"] = "measured"
    note: str = ""
    machine: Machine = Field(default_factory=Machine)
    models: list[ModelFigures]

    model_config = ConfigDict(extra="forbid", populate_by_name=True, protected_namespaces=())

    def find(self, pipeline: str, model_id: str) -> ModelFigures | None:
        return next((m for m in self.models if m.key == (pipeline, model_id)), None)

    def dump_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", by_alias=True), indent=2) + "\n"


class ResultsError(ValueError):
    pass


def load_results(path: str | Path) -> BenchResults:
    """Read a bench results file (or a folder holding results.json)."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResultsError(f"cannot read bench results {p}: {exc}") from exc
    if data.get("schema") != SCHEMA:
        raise ResultsError(f"{p}: schema is {data.get('schema')!r}, expected {SCHEMA!r}")
    try:
        return BenchResults.model_validate(data)
    except ValueError as exc:
        raise ResultsError(f"{p}: {exc}") from exc


def load_reference() -> BenchResults:
    """The committed reference table: ESTIMATES from the operator guide and parameter counts, not measurements."""
    return load_results(REFERENCE_PATH)
