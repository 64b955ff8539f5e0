"""Settings from env and flags, model resolution in the HF cache layout, and the CLI as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from runner_sdk import RunnerSettings
from runner_sdk.cli import build_parser, settings_from
from runner_sdk.hfcache import install_snapshot
from runner_sdk.resolve import ModelNotFound, cache_folder, resolve_snapshot
from runner_sdk.testing import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("value, on", [("true", True), (" TRUE ", True), ("True", True), ("false", False),
                                       ("1", False), ("", False)])
def test_optimisation_flags_follow_livepeer_semantics(monkeypatch, value, on):
    monkeypatch.setenv("SFAST", value)
    monkeypatch.setenv("DEEPCACHE", value)
    s = RunnerSettings()
    assert s.sfast is on and s.deepcache is on


@pytest.mark.parametrize("value, on", [("1", True), ("true", False), ("0", False), ("", False)])
def test_verbose_logging_only_for_exactly_one(monkeypatch, value, on):
    monkeypatch.setenv("VERBOSE_LOGGING", value)
    assert RunnerSettings().verbose_logging is on


def test_bfloat16_false_is_off(monkeypatch):
    # Q21: go-livepeer turns JSON false into "false"; upstream treated any non-empty value as on.
    monkeypatch.setenv("BFLOAT16", "false")
    assert RunnerSettings().bfloat16 is False
    monkeypatch.setenv("BFLOAT16", "yes")
    assert RunnerSettings().bfloat16 is True


def test_env_then_flags(monkeypatch, tmp_path):
    monkeypatch.setenv("PIPELINE", "llm")
    monkeypatch.setenv("MODEL_ID", "org/a")
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("RUNNER_CAPACITY", "3")
    monkeypatch.setenv("AUTH_TOKEN", "tok")
    args = build_parser().parse_args(["serve", "--model-id", "org/b", "--device", "cuda:1", "--queue-size", "0"])
    s = settings_from(args)
    assert (s.pipeline, s.model_id, s.model_dir, s.device) == ("llm", "org/b", tmp_path, "cuda:1")
    assert (s.capacity, s.queue_size, s.auth_token) == (3, 0, "tok")
    assert s.public_dict()["auth_token"] == "set"


def test_resolve_offline_from_hf_cache_layout(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFound, match="org/model.*not in MODEL_DIR"):
        resolve_snapshot("org/model", tmp_path)
    src = tmp_path / "src"
    (src / "unet").mkdir(parents=True)
    (src / "config.json").write_text("{}")
    (src / "unet" / "w.safetensors").write_bytes(b"abc")
    snap = install_snapshot(src, tmp_path, "org/model")
    repo = cache_folder(tmp_path, "org/model")
    assert repo.name == "models--org--model"
    assert (repo / "refs" / "main").read_text() == snap.name
    assert (snap / "unet" / "w.safetensors").is_symlink()
    assert (snap / "unet" / "w.safetensors").read_bytes() == b"abc"
    assert resolve_snapshot("org/model", tmp_path) == snap
    assert resolve_snapshot(str(src.parent), tmp_path) == src.parent  # a local directory is used as it is


def _serve(env: dict, *args: str) -> subprocess.Popen:
    full_env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "HF_HUB_OFFLINE": "1", **env}
    return subprocess.Popen([sys.executable, "-m", "runner_sdk", "serve", *args], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize("env", [{"PIPELINE": "", "MODEL_ID": "x/y"}, {"PIPELINE": "llm", "MODEL_ID": ""},
                                 {"PIPELINE": "image-to-banana", "MODEL_ID": "x/y"}])
def test_serve_refuses_bad_pipeline_or_model_unbound(env):
    proc = _serve(env, "--port", str(free_port()))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert "PIPELINE" in out or "pipeline" in out


def _sigterm_mid_request(tmp_path, runner_spec: str, **extra_env: str) -> tuple[httpx.Response, float, str]:
    """Serve `runner_spec` in its own process, start one request, SIGTERM once it runs; returns the
    request's response, seconds from SIGTERM to exit, and the process output."""
    port = free_port()
    # MODEL_ID a local folder with a file in it: the start-up preflight finds the model there.
    (tmp_path / "weights.bin").write_bytes(b"w")
    env = {"PIPELINE": "text-to-image", "MODEL_ID": str(tmp_path), "MODEL_DIR": str(tmp_path),
           "RUNNER_CLASS": runner_spec, **extra_env}
    proc = _serve(env, "--port", str(port), "--host", "127.0.0.1", "--device", "cpu")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health").json()["status"] == "IDLE":
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        result: list = []
        t = threading.Thread(target=lambda: result.append(
            httpx.post(url + "/text-to-image", json={"prompt": "x", "width": 8, "height": 8}, timeout=30)))
        t.start()
        while httpx.get(url + "/health").json()["status"] != "OK":
            time.sleep(0.01)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=8)  # go-livepeer's grace period
        exit_s = time.monotonic() - t0
        t.join()
    finally:
        if proc.poll() is None:
            proc.kill()
        out = proc.stdout.read()
    return result[0], exit_s, out


def test_serve_process_drains_in_flight_request_on_sigterm(tmp_path):
    response, exit_s, out = _sigterm_mid_request(tmp_path, "fakes:SlowImageRunner", VERBOSE_LOGGING="1")
    assert response.status_code == 200  # the in-flight request finished before exit
    assert exit_s < 8
    assert "DEBUG" in out  # VERBOSE_LOGGING=1 enables debug logs


def test_job_still_running_after_the_sigterm_grace_period_gets_a_json_500(tmp_path):
    """uvicorn cancels what is left after its 6 s grace: the client still gets JSON, never plain text."""
    r, exit_s, _out = _sigterm_mid_request(tmp_path, "fakes:StuckImageRunner")
    assert r.status_code == 500 and r.headers["content-type"].startswith("application/json")
    assert r.json() == {"detail": {"msg": "runner shutting down"}}
    assert exit_s < 8


def test_stock_llm_max_num_seqs_is_capacity_unless_runner_capacity_is_set(monkeypatch):
    monkeypatch.setenv("MAX_NUM_SEQS", "8")
    assert RunnerSettings().capacity == 8
    monkeypatch.setenv("RUNNER_CAPACITY", "2")
    assert RunnerSettings().capacity == 2
