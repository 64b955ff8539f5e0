"""`runner-sdk bench` end to end on the CPU with tiny synthetic models, for every served pipeline it has a
workload for, in well under 5 minutes: JSON, one p50 per capacity, the spread, labelled PNG charts, synthetic
weights under --model-dir (not --out)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from runner_sdk.aimodels.results import load_results

UNITS = {"text-to-image": "pixels", "audio-to-text": "audio_ms", "llm": "tokens"}


def available() -> list[str]:
    from runner_sdk.bench.run import benchable

    return benchable()[0]


@pytest.mark.timeout(300)
def test_bench_end_to_end_on_cpu(tmp_path):
    pipelines = available()
    if not pipelines:
        pytest.skip("no runner available")
    out = tmp_path / "results"
    model_dir = tmp_path / "no-real-models"
    args = [sys.executable, "-m", "runner_sdk", "bench", "--scale", "tiny", "--device", "cpu", "--max-capacity", "2",
            "--requests", "2", "--model-dir", str(model_dir), "--out", str(out)]
    started = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, timeout=290)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-3000:]

    results = load_results(out / "results.json")  # the schema `aimodels plan` reads
    assert [m.pipeline for m in results.models] == pipelines
    assert elapsed < 300, elapsed
    units = UNITS
    for m in results.models:
        assert m.weights == "synthetic-tiny" and m.source == "measured"
        assert m.warm_vram_bytes is None and m.peak_vram_bytes is None  # not measured on the CPU, not zero
        assert m.cold_load_s > 0 and m.latency_s.p50 > 0
        assert m.throughput.units_per_s > 0 and m.throughput.unit == units.get(m.pipeline, m.throughput.unit)
        assert [r.capacity for r in m.by_capacity] == [1, 2]
        assert all(r.spread is not None and r.latency_p50_s > 0 for r in m.by_capacity)
    raw = json.loads((out / "raw.json").read_text())
    assert all(run["statuses"] == {"200": 2 * run["capacity"]} for entry in raw for run in entry["runs"])
    assert {"init", "read_weights"} <= set(raw[0]["runs"][0]["load_phases_s"])  # tiny: runner warm-up skipped

    table = (out / "results.md").read_text()
    assert "CPU only, no GPU" in table and "scale tiny, device cpu" in table
    for m in results.models:
        assert f"| {m.pipeline} | {m.model_id} | synthetic-tiny |" in table
        # One p50 per capacity, in one place: the by-capacity rows.
        for r in m.by_capacity:
            assert table.count(f"| {m.pipeline} | {r.capacity} | {r.latency_p50_s:.3f} s |") == 1
    assert table.count("not measured (CPU)") >= 2 * len(pipelines)
    # Synthetic weights go under --model-dir, never into the results folder.
    assert (model_dir / "runner-sdk-synthetic" / "tiny").is_dir()
    assert not any(p.name.startswith("models--") for p in out.rglob("*"))
    assert "loading" in proc.stdout
    for chart in ("throughput.png", "vram.png"):
        assert (out / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "weights synthetic-tiny" in proc.stdout
