"""benchmarks/text_to_speech/gpu_bench.py end to end on the CPU at tiny scale: synth, the runner at capacity 1 and 2,
the naive transformers baseline, and the report."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tts_gpu_bench_runs_on_the_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = importlib.util.spec_from_file_location("tts_gpu_bench", ROOT / "benchmarks/text_to_speech/gpu_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "gpu.md"
    results = bench.main(["--device", "cpu", "--scale", "tiny", "--requests", "1", "--in-process",
                          "--model-dir", str(tmp_path / "models"), "--out", str(out)])
    rows = results["rows"]
    assert list(rows) == ["runner, capacity 1", "runner, capacity 2 (2 clients)", "naive transformers"]
    assert all("skipped" not in row for row in rows.values()), rows
    assert rows["runner, capacity 1"]["load_phases_s"]["read_weights"] >= 0
    assert rows["naive transformers"]["p50_s"] > 0
    text = out.read_text()
    assert "| runner, capacity 1 |" in text and "| naive transformers |" in text
    assert json.loads(out.with_suffix(".json").read_text())["rows"].keys() == rows.keys()
