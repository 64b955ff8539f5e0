"""The GPU check's results: results.json (`runner-sdk bench`'s schema, which `aimodels plan` reads), raw.json,
results.md (`runner-sdk bench`'s tables, then each naive baseline beside the runner, the correctness tests and
the sections' outcomes), check.json, and the charts; the closing summary printed last."""

from __future__ import annotations

import json
import platform
import time
from typing import Any

from sections import Context

GIB = 2**30


def _num(value: Any, fmt: str = ".3f", unit: str = " s") -> str:
    return f"{value:{fmt}}{unit}" if isinstance(value, (int, float)) else "-"


def _peak(row: dict) -> Any:
    peak = row.get("peak_vram") or {}
    return peak.get("torch_reserved") or peak.get("torch_allocated") or row.get("peak_allocated")


def baseline_rows(ctx: Context) -> list[str]:
    """One row per pipeline: the runner at capacity 1 beside its naive baseline, measured in this run."""
    lines = ["## Beside the naive baseline (same run)", "",
             "The baseline is plain diffusers/transformers as the stock runner does it, in a fresh process, no "
             "HTTP (so a lower bound for the stock runner's latency); the runner's p50 is end to end over HTTP.",
             "", "| pipeline | runner cold load | runner p50 | baseline load | baseline p50 | baseline rate | "
             "baseline peak VRAM |", "|---|---|---|---|---|---|---|"]
    by_pipeline = {f.pipeline: f for f in ctx.figures}
    for pipeline, base in ctx.baselines.items():
        fig = by_pipeline.get(pipeline)
        load = _num(fig.cold_load_s, ".2f") if fig else "-"
        p50 = _num(fig.latency_s.p50) if fig and fig.latency_s else "-"
        if "report" in base:  # the LLM's and audio-to-text's own gpu_bench reports
            lines.append(f"| {pipeline} | {load} | {p50} | its own report, below ({base['report']}) | | | |")
            continue
        if "not_run" in base:
            lines.append(f"| {pipeline} | {load} | {p50} | not run: {base['not_run']} | | | |")
            continue
        rate = base.get("per_s", base.get("images_per_s"))
        peak = _peak(base)
        lines.append(f"| {pipeline} | {load} | {p50} | {_num(base.get('ready_s'), '.2f')} | {_num(base.get('p50_s'))} "
                     f"| {_num(rate, '.2f', ' req/s')} | {_num(peak / GIB if peak else None, '.2f', ' GiB')} |")
    return lines


def llm_lines(ctx: Context) -> list[str]:
    """The LLM's engine beside `generate`: decode tokens/s and time to first token per variant and streams."""
    base = ctx.baselines.get("llm")
    if not base or "variants" not in base:
        return []
    lines = ["", "### LLM: the runner's engine beside plain transformers `generate` (benchmarks/llm/gpu_bench.py)",
             "", "| variant | streams | aggregate tok/s | decode tok/s (1 stream) | TTFT | peak VRAM |",
             "|---|---|---|---|---|---|"]
    rows = [(name, r) for name, runs in (base.get("variants") or {}).items() for r in runs or []]
    rows += [("generate (baseline)", r) for r in (base.get("baseline") or {}).values()]
    for name, r in rows:
        lines.append(f"| {name} | {r.get('streams')} | {_num(r.get('aggregate_tok_s'), '.1f', '')} | "
                     f"{_num(r.get('decode_tok_s'), '.1f', '')} | {_num(r.get('ttft_ms'), '.1f', ' ms')} | "
                     f"{_num(r.get('peak_vram_gb'), '.2f', ' GB')} |")
    if base.get("skipped"):
        lines.append(f"\nSkipped in that script: {', '.join(base['skipped'])}")
    return lines


def section_lines(done: dict[str, dict]) -> list[str]:
    lines = ["", "## Sections", "", "| section | status | seconds | detail |", "|---|---|---|---|"]
    for name, d in done.items():
        detail = d.get("reason") or d.get("error") or ""
        if name.startswith("correctness") and d.get("result"):
            detail = d["result"]["summary"] + "".join(f"<br>{s}" for s in d["result"]["skipped"][:20])
        lines.append(f"| {name} | {d['status']} | {d.get('seconds', '-')} | {detail.replace('|', '/')[:900]} |")
    return lines


def write_results(ctx: Context, done: dict[str, dict], pipelines: list[str], started: float) -> None:
    """results.json, raw.json, results.md, check.json and the charts, from what has been measured so far."""
    from runner_sdk.aimodels.results import BenchResults
    from runner_sdk.bench.report import charts, markdown
    from runner_sdk.bench.run import machine

    note = (f"benchmarks/gpu/check.sh, scale {ctx.scale}, device {ctx.device}, "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}, {time.monotonic() - started:.0f} s; cold loads with a warm "
            "page cache (the synthetic weights were just written)"
            + ("; tiny: runner warm-up skipped, so cold loads exclude it" if ctx.scale == "tiny" else ""))
    results = BenchResults(source="measured", machine=machine(ctx.device), models=ctx.figures, note=note)
    (ctx.out / "results.json").write_text(results.dump_json())
    (ctx.out / "raw.json").write_text(json.dumps({"runner": ctx.raw, "baselines": ctx.baselines}, indent=2,
                                                 default=str) + "\n")
    text = markdown(results, ctx.raw) if ctx.figures else "# GPU check: no runner measured yet\n"
    text += "\n".join(["", *baseline_rows(ctx), *llm_lines(ctx), *section_lines(done), ""])
    for base in ctx.baselines.values():  # the LLM's and audio-to-text's own reports, whole (a few KB each)
        report = ctx.details / base.get("report", "-")
        if report.is_file():
            text += "\n---\n\n" + report.read_text().replace("\n# ", "\n## ").removeprefix("# ").strip() + "\n"
    (ctx.out / "results.md").write_text(text)
    (ctx.out / "check.json").write_text(json.dumps({
        "scale": ctx.scale, "device": ctx.device, "pipelines": pipelines, "python": platform.python_version(),
        "versions": versions(), "sections": done}, indent=2, default=str) + "\n")
    if ctx.figures:
        charts(results, ctx.out, f"{ctx.device}, scale {ctx.scale}")


def versions() -> dict[str, str]:
    """The versions the check ran with (the host's own and the carried ones)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "transformers", "diffusers", "accelerate", "huggingface_hub", "fastapi", "pydantic",
                 "torchao", "av", "DeepCache", "tokenizers", "safetensors"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "missing"
    return found


def summary_lines(ctx: Context, done: dict[str, dict], pipelines: list[str], strict: bool) -> tuple[list[str], list[str]]:
    """The closing table (the last thing printed: the device's reply keeps the end of the output) and, for
    --strict, every problem: a failed or skipped section, a pipeline missing from results.json."""
    lines = ["", "=" * 100, f"GPU check summary ({ctx.scale}, {ctx.device}); results in {ctx.out}", ""]
    for name, d in done.items():
        extra = d.get("reason") or d.get("error", "")[:300]
        lines.append(f"  {d['status']:8} {d.get('seconds', '-'):>7} s  {name}  {extra}")
    lines.append("")
    for f in ctx.figures:
        peak = f"{f.peak_vram_bytes / GIB:.2f} GiB" if f.peak_vram_bytes else "n/a"
        lines.append(f"  {f.pipeline:20} cold {f.cold_load_s:6.2f} s  p50 {f.latency_s.p50 if f.latency_s else 0:7.3f} s"
                     f"  {f.throughput.units_per_s if f.throughput else 0:14,.1f} {f.throughput.unit}/s  peak {peak}")
    problems = [f"{n}: {d['status']} ({d.get('reason') or d.get('error', '')[:300]})" for n, d in done.items()
                if d["status"] != "ok"]
    for d in done.values():  # a test skipped for time in a run that had time (the rehearsal) is a problem too
        for line in (d.get("result") or {}).get("skipped", []):
            if "time budget" in line:
                problems.append(line)
    measured = {f.pipeline for f in ctx.figures}
    problems += [f"results.json lacks {p}" for p in pipelines if p not in measured]
    skipped = [n for n, d in done.items() if d["status"] == "skipped"]
    if skipped and not strict:
        lines.append(f"\n  skipped for time; rerun them with: bash benchmarks/gpu/check.sh ... --only '{','.join(skipped)}'")
    return lines, problems
