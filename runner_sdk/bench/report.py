"""results.md and the charts of `runner-sdk bench`: one p50 per capacity, the spread between repeats (with a
warning when it is large), and charts labelled with the device, the scale and whether weights were real."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..aimodels.results import BenchResults

NOISY = 0.25


def _gib(value: int | None) -> str:
    return "not measured (CPU)" if value is None else f"{value / 2**30:.2f} GiB"


def _where(results: BenchResults) -> str:
    m = results.machine
    return f"{m.gpu_name} ({m.gpu_memory_bytes / 2**30:.0f} GiB)" if m.gpu_name else "CPU only, no GPU"


def markdown(results: BenchResults, raw: list[dict[str, Any]]) -> str:
    """results.md: per model its load and VRAM; per capacity one row with p50, p95, throughput and spread.

    Args:
        results: what results.json holds.
        raw: raw.json (the cold load phases).

    Returns:
        Markdown text.
    """
    lines = [f"# Runner benchmark: {_where(results)}", "", f"Host: {results.machine.host}. {results.note}.", "",
             "| pipeline | model | weights | cold load | warm VRAM | peak VRAM (capacity 1) |", "|---|---|---|---|---|---|"]
    for f in results.models:
        load = f"{f.cold_load_s:.2f} s" if f.cold_load_s is not None else "-"
        lines.append(f"| {f.pipeline} | {f.model_id} | {f.weights} | {load} | {_gib(f.warm_vram_bytes)} "
                     f"| {_gib(f.peak_vram_bytes)} |")
    lines += ["", "## By capacity (one fresh server each; latency per request, throughput over the run)", "",
              "| pipeline | capacity | p50 | p95 | throughput | spread between repeats | peak VRAM |",
              "|---|---|---|---|---|---|---|"]
    noisy = []
    for f in results.models:
        unit = f.throughput.unit if f.throughput else "units"
        for r in f.by_capacity:
            tp = f"{r.units_per_s:,.1f} {unit}/s" if r.units_per_s is not None else "-"
            p50 = f"{r.latency_p50_s:.3f} s" if r.latency_p50_s is not None else "-"
            p95 = f"{r.latency_p95_s:.3f} s" if r.latency_p95_s is not None else "-"
            spread = f"{r.spread:.0%}" if r.spread is not None else "-"
            if (r.spread or 0) > NOISY:
                spread += " (noisy)"
                noisy.append(f"{f.pipeline} capacity {r.capacity}")
            lines.append(f"| {f.pipeline} | {r.capacity} | {p50} | {p95} | {tp} | {spread} | {_gib(r.peak_vram_bytes)} |")
    if noisy:
        lines += ["", f"**Warning: the throughput varied by more than {NOISY:.0%} between repeats for "
                  f"{', '.join(noisy)}.** Differences between capacities within that spread are noise: "
                  "`aimodels plan` keeps the lower capacity then. Run more --requests, on an idle machine."]
    lines += ["", "## Cold load by phase (capacity 1 run)", ""]
    for entry in raw:
        phases = entry["runs"][0]["load_phases_s"]
        lines.append(f"- {entry['pipeline']}: " + ", ".join(f"{k} {v:.2f} s" for k, v in phases.items()))
    lines += ["", "Peak VRAM is torch's reserved peak plus the process's memory outside torch (CUDA context) "
              "from NVML; VRAM is not measured on the CPU. Throughput is in each pipeline's pricing unit.", ""]
    return "\n".join(lines)


def charts(results: BenchResults, out: Path, label: str = "") -> None:
    """throughput.png (units/s by capacity, per model) and vram.png (warm and peak per model) in `out`, titled
    with the device, the scale (`label`) and the weights of each model.

    Args:
        results: what results.json holds.
        out: the folder.
        label: e.g. "cpu, scale tiny".
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = results.models
    title = f"{_where(results)} -- {label}" if label else _where(results)
    cols = min(3, len(models))
    rows = -(-len(models) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.6 * rows + 0.4), squeeze=False)
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    for ax, f in zip(axes.flat, models, strict=False):  # the grid may have spare cells
        caps = [r.capacity for r in f.by_capacity]
        ax.plot(caps, [r.units_per_s or 0 for r in f.by_capacity], marker="o")
        ax.set_title(f"{f.pipeline}\n{f.model_id}\nweights: {f.weights}", fontsize=8)
        ax.set_xlabel("capacity")
        ax.set_ylabel(f"{f.throughput.unit}/s" if f.throughput else "units/s")
        ax.set_xticks(caps)
    fig.suptitle(f"Throughput by capacity: {title}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(models)), 4.4))
    names = [f"{f.pipeline}\n({f.weights})" for f in models]
    xs = range(len(models))
    ax.bar([x - 0.2 for x in xs], [(f.warm_vram_bytes or 0) / 2**30 for f in models], width=0.4, label="warm")
    ax.bar([x + 0.2 for x in xs], [(f.peak_vram_bytes or 0) / 2**30 for f in models], width=0.4, label="peak")
    ax.set_xticks(list(xs), names, fontsize=7, rotation=30, ha="right")
    ax.set_ylabel("GiB")
    ax.set_title(f"VRAM: {title}", fontsize=9)
    if all(f.warm_vram_bytes is None for f in models):
        ax.text(0.5, 0.5, "VRAM not measured (CPU run)", ha="center", va="center", transform=ax.transAxes)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "vram.png", dpi=110)
    plt.close(fig)
