"""benchmarks/llm/gpu_bench.py end to end on the CPU at tiny scale, with its vLLM sections: the portable
engine and vLLM in process side by side on the same bf16 weights, vLLM on a synthesized AWQ int4
checkpoint, 1 and 8 streams each, beside plain `generate`. Needs vLLM (`make vllm-test`, .venv-vllm)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NEW_TOKENS = 4


def test_gpu_bench_compares_vllm_and_the_portable_engine_on_the_cpu(tmp_path, monkeypatch):
    pytest.importorskip("vllm", reason="needs vLLM: run `make vllm-test` (the .venv-vllm environment)")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    spec = importlib.util.spec_from_file_location("llm_gpu_bench", ROOT / "benchmarks" / "llm" / "gpu_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "llm.md"
    report = bench.main(["--scale", "tiny", "--device", "cpu", "--model-dir", str(tmp_path / "models"),
                         "--new-tokens", str(NEW_TOKENS), "--prompt-tokens", "16", "--streams", "1,8",
                         "--variants", "bf16,int4", "--vllm-variants", "bf16,int4", "--out", str(out)])
    variants = report["variants"]
    # The order pairs each vLLM variant with its portable counterpart.
    assert list(variants) == ["bf16", "vllm-bf16", "vllm-int4"], (list(variants), report["skipped"])
    assert report["skipped"] == ["int4: CUDA only"]  # torchao's int4 needs CUDA; vLLM's AWQ runs on the CPU
    for name, variant in variants.items():
        runs = {r["streams"]: r for r in variant["runs"]}
        assert set(runs) == {1, 8}, (name, variant["runs"])
        for n, run in runs.items():
            assert run["tokens"] == n * NEW_TOKENS and run["aggregate_tok_s"] > 0, (name, run)
        assert runs[1]["ttft_ms"] > 0 and runs[1]["decode_tok_s"] > 0, (name, runs[1])
        assert variant["load"]["optimisations"]["LLM_BACKEND"] == ("vllm" if name.startswith("vllm") else
                                                                   "transformers")
    assert "awq" in variants["vllm-int4"]["load"]["optimisations"]["QUANTIZATION"]
    assert variants["vllm-int4"]["weight_bytes"] < variants["vllm-bf16"]["weight_bytes"]
    assert set(report["baseline"]) == {"1", "8"}
    text = out.read_text()
    assert all(f"| {name} (" in text for name in variants) and "| transformers generate (baseline) |" in text
    assert json.loads(out.with_suffix(".json").read_text())["variants"].keys() == variants.keys()
