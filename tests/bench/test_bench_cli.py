"""`runner-sdk bench` end to end on the CPU with tiny synthetic models: JSON, Markdown table, PNG charts."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from runner_sdk.aimodels.results import load_results

PIPELINES = {"text-to-image": "runners.text_to_image.runner", "audio-to-text": "runners.audio_to_text.runner",
             "llm": "runners.llm.runner"}


def available() -> list[str]:
    # Two fresh server processes per pipeline cost ~10 s each on 2 cores: CI measures text-to-image; the
    # workloads of the other pipelines are the same code path with other bodies (RUNNER_BENCH_ALL=1 runs all).
    chosen = list(PIPELINES) if os.environ.get("RUNNER_BENCH_ALL") else ["text-to-image"]
    return [p for p in chosen if importlib.util.find_spec(PIPELINES[p]) is not None]


@pytest.mark.timeout(600)
def test_bench_end_to_end_on_cpu(tmp_path):
    pipelines = available()
    if not pipelines:
        pytest.skip("no runner available")
    out = tmp_path / "results"
    args = [sys.executable, "-m", "runner_sdk", "bench", "--scale", "tiny", "--device", "cpu", "--max-capacity", "2",
            "--requests", "1", "--model-dir", str(tmp_path / "no-real-models"), "--out", str(out)]
    for p in pipelines:
        args += ["--pipeline", p]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=580)
    assert proc.returncode == 0, proc.stderr[-3000:]

    results = load_results(out / "results.json")  # the schema `aimodels plan` reads
    assert [m.pipeline for m in results.models] == pipelines
    units = {"text-to-image": "pixels", "audio-to-text": "audio_ms", "llm": "tokens"}
    for m in results.models:
        assert m.weights == "synthetic-tiny" and m.source == "measured"
        assert m.warm_vram_bytes is None and m.peak_vram_bytes is None  # not measured on the CPU, not zero
        assert m.cold_load_s > 0 and m.latency_s.p50 > 0
        assert m.throughput.unit == units[m.pipeline] and m.throughput.units_per_s > 0
        assert [r.capacity for r in m.by_capacity] == [1, 2]
    raw = json.loads((out / "raw.json").read_text())
    assert all(run["statuses"] == {"200": run["capacity"]} for entry in raw for run in entry["runs"])
    assert {"init", "read_weights", "warmup"} <= set(raw[0]["runs"][0]["load_phases_s"])

    table = (out / "results.md").read_text()
    assert "CPU only, no GPU" in table
    for m in results.models:
        assert f"| {m.pipeline} | {m.model_id} | synthetic-tiny |" in table
    assert table.count("not measured (CPU)") >= 2 * len(pipelines)
    for chart in ("throughput.png", "vram.png"):
        assert (out / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "weights synthetic-tiny" in proc.stdout
