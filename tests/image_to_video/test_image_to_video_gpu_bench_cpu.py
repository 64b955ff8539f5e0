"""benchmarks/image_to_video/gpu_bench.py runs end to end on the CPU at tiny scale (in-process servers, 1 request a row):
every section answers, the report has a row for each, the runner and the naive baseline both measured."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_bench_runs_on_the_cpu_at_tiny_scale(tmp_path):
    spec = importlib.util.spec_from_file_location("image_to_video_gpu_bench", ROOT / "benchmarks/image_to_video/gpu_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "report.md"
    results = bench.main(["--device", "cpu", "--scale", "tiny", "--requests", "1", "--in-process",
                          "--model-dir", str(tmp_path / "models"), "--out", str(out)])
    rows = results["rows"]
    assert {"runner, capacity 1", "runner, capacity 2 (2 clients)", "naive diffusers"} <= set(rows)
    failed = {name: row["skipped"] for name, row in rows.items() if "skipped" in row}
    assert not failed
    assert all(row["n"] == 1 and row["p50_s"] > 0 for row in rows.values())
    assert rows["runner, capacity 1"]["load_phases_s"]["read_weights"] > 0
    text = out.read_text()
    assert all(f"| {name} |" in text for name in rows) and out.with_suffix(".json").exists()
