"""LLM_BACKEND=vllm beyond the shared contract: what happens when vLLM's engine core process dies (real
SmolLM2-135M-Instruct weights on the CPU; needs vLLM, `make vllm-test`)."""

from __future__ import annotations

import importlib.util
import time

import httpx
import pytest
from llm_backends.conftest import VLLM_ENV

from runner_sdk.testing import serve
from runners.llm.import_gguf import SMOLLM2_ID

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
# Skipped before the weights fixture runs.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                reason="needs vLLM: run `make vllm-test` (the .venv-vllm environment)")


def test_a_dead_engine_core_turns_health_to_error_and_fails_requests(smol_dir, monkeypatch):
    from runners.llm.runner import LLMRunner

    for k, v in VLLM_ENV.items():
        monkeypatch.setenv(k, v)
    with serve(LLMRunner, options={"llm_backend": "vllm"}, model_id=SMOLLM2_ID, model_dir=smol_dir, capacity=1,
               queue_size=0, ready_timeout=240) as srv:
        backend = srv.host.runner.backend
        try:
            assert httpx.get(srv.url + "/health").json()["status"] == "IDLE"
            ok = httpx.post(srv.url + "/llm", json={"model": SMOLLM2_ID, "messages": QUESTION, "max_tokens": 4},
                            timeout=60)
            assert ok.status_code == 200, ok.text
            for proc in backend.engine.engine_core.resources.engine_manager.processes:  # this engine's only
                proc.kill()
            deadline = time.monotonic() + 30
            while httpx.get(srv.url + "/health", timeout=5).json()["status"] != "ERROR":
                assert time.monotonic() < deadline, "/health never turned ERROR"
                time.sleep(0.2)
            assert "vLLM engine" in backend.healthy()
            refused = httpx.post(srv.url + "/llm", json={"model": SMOLLM2_ID, "messages": QUESTION,
                                                          "max_tokens": 4}, timeout=30)
            assert refused.status_code >= 500 and refused.headers["content-type"] == "application/json"
        finally:
            backend.close()
        assert not backend.loop.thread.is_alive()
