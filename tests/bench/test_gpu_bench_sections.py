"""Each pipeline's benchmarks/<pipeline>/gpu_bench.py runs end to end on the CPU at tiny scale (in-process
servers, 1 request a row): every section answers, the report has a row for each, the runner and the naive
baseline are both measured. Two harnesses: diffusers pipelines (bench_common.py) and transformers ones
(image_to_text/harness.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--device", "cpu", "--scale", "tiny", "--requests", "1", "--in-process"]


def _run(pipeline: str, tmp_path: Path, out: Path) -> dict:
    script = ROOT / "benchmarks" / pipeline / "gpu_bench.py"
    spec = importlib.util.spec_from_file_location(f"{pipeline}_gpu_bench", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench.main([*ARGS, "--model-dir", str(tmp_path / "models"), "--out", str(out)])


@pytest.mark.parametrize("pipeline", ["image_to_image", "upscale", "image_to_video"])
def test_diffusers_gpu_bench_runs_on_the_cpu_at_tiny_scale(pipeline, tmp_path):
    out = tmp_path / "report.md"
    rows = _run(pipeline, tmp_path, out)["rows"]
    assert {"runner, capacity 1", "runner, capacity 2 (2 clients)", "naive diffusers"} <= set(rows)
    failed = {name: row["skipped"] for name, row in rows.items() if "skipped" in row}
    assert not failed
    assert all(row["n"] == 1 and row["p50_s"] > 0 for row in rows.values())
    assert rows["runner, capacity 1"]["load_phases_s"]["read_weights"] > 0
    text = out.read_text()
    assert all(f"| {name} |" in text for name in rows) and out.with_suffix(".json").exists()


@pytest.mark.parametrize("pipeline", ["image_to_text", "segment_anything_2", "text_to_speech"])
def test_transformers_gpu_bench_runs_on_the_cpu(pipeline, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "gpu.md"
    rows = _run(pipeline, tmp_path, out)["rows"]
    assert list(rows) == ["runner, capacity 1", "runner, capacity 2 (2 clients)", "naive transformers"]
    assert all("skipped" not in row for row in rows.values()), rows
    assert rows["runner, capacity 1"]["load_phases_s"]["read_weights"] >= 0
    assert rows["naive transformers"]["p50_s"] > 0
    text = out.read_text()
    assert "| runner, capacity 1 |" in text and "| naive transformers |" in text
    assert json.loads(out.with_suffix(".json").read_text())["rows"].keys() == rows.keys()
