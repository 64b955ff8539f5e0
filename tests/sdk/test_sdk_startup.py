"""Operator experience at start-up: one-line setting errors (exit 2), the preflight (the first /health answer
is ERROR with the reason, or exit 1 before binding), and `import-weights`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from runner_sdk import Runner, routes
from runner_sdk.cli import main
from runner_sdk.hfcache import install_snapshot
from runner_sdk.preflight import device_problem, environment_problems, route_problem
from runner_sdk.resolve import resolve_snapshot
from runner_sdk.testing import RunningServer, free_port, settings_for

ROOT = Path(__file__).resolve().parents[2]
SERVE = ["serve", "--pipeline", "text-to-image", "--model-id", "org/m", "--device", "cpu"]


def _one_line_exit_2(capsys, argv: list[str], *names: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    for name in names:
        assert name in err, err
    return err


@pytest.mark.parametrize("flags, names", [
    (["--capacity", "0"], ["--capacity", "'0'", "integer >= 1"]),
    (["--capacity", "abc"], ["RUNNER_CAPACITY", "'abc'"]),
    (["--port", "70000"], ["PORT", "1-65535"]),
    (["--warmup", "maybe"], ["--warmup", "'maybe'", "false"]),
    (["--sfast", "yes"], ["--sfast", "'yes'", "true or false"]),
    (["--sfast", "1"], ["--sfast", "'1'"]),
    (["--bfloat16", "si"], ["--bfloat16", "'si'"]),
    (["--device", "gpu7"], ["RUNNER_DEVICE", "'gpu7'", "cuda:N"]),
    (["--runner", "fakes:NoSuchClass"], ["RUNNER_CLASS", "fakes:NoSuchClass", "module:Class"]),
    (["--runner", "fakes"], ["RUNNER_CLASS", "'fakes'", "class name is missing"]),
    (["--runner", "no_such_module:X"], ["RUNNER_CLASS", "no_such_module"]),
    (["--runner", "fakes:FakeAudioRunner"], ["PIPELINE", "'text-to-image'", "/audio-to-text", "audio-to-text"]),
])
def test_serve_setting_errors_are_one_line_and_exit_2(capsys, flags, names):
    _one_line_exit_2(capsys, SERVE + flags, *names)


@pytest.mark.parametrize("env, names", [({"PORT": "notaport"}, ["PORT", "'notaport'"]),
                                        ({"RUNNER_CAPACITY": "two"}, ["RUNNER_CAPACITY", "'two'"]),
                                        ({"RUNNER_WARMUP": "maybe"}, ["RUNNER_WARMUP", "'maybe'"]),
                                        ({"RUNNER_ON_PREFLIGHT_FAILURE": "crash"}, ["error or exit"])])
def test_env_setting_errors_are_one_line_and_exit_2(capsys, monkeypatch, env, names):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _one_line_exit_2(capsys, SERVE, *names)


def test_sfast_env_keeps_livepeer_semantics(monkeypatch):
    """As env vars (what go-livepeer passes), SFAST/DEEPCACHE are on only for "true": other words are off."""
    from runner_sdk.settings import load_settings

    monkeypatch.setenv("SFAST", "yes")
    monkeypatch.setenv("DEEPCACHE", "1")
    s = load_settings()
    assert s.sfast is False and s.deepcache is False


def test_download_mistakes_are_one_line(capsys, monkeypatch, tmp_path):
    _one_line_exit_2(capsys, ["download", "--pipeline", "image-to-banana", "--model-id", "a/b", "--model-dir",
                              str(tmp_path)], "PIPELINE", "'image-to-banana'", "text-to-image")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network: what a download without one meets
    _one_line_exit_2(capsys, ["download", "--pipeline", "llm", "--model-id", "a/b", "--model-dir", str(tmp_path)],
                     "runner-sdk download", "a/b")


class _Weights(Runner):
    route = routes.TEXT_TO_IMAGE

    @classmethod
    def download_plan(cls, model_id):
        return [(model_id, ["*.json", "*.safetensors"])]


def test_route_problem_names_both_pipelines():
    assert route_problem(_Weights, "text-to-image") is None
    reason = route_problem(_Weights, "image-to-text")
    assert "/text-to-image" in reason and "image-to-text" in reason


def test_preflight_finds_empty_model_dir_missing_file_and_bad_device(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = settings_for(_Weights, model_id="org/m", model_dir=tmp_path)
    (problem,) = environment_problems(_Weights, settings)
    assert "org/m" in problem and "MODEL_DIR" in problem  # empty MODEL_DIR
    src = tmp_path / "src"
    src.mkdir()
    (src / "config.json").write_text("{}")
    (src / "w.safetensors").write_bytes(b"x")
    snapshot = install_snapshot(src, tmp_path, "org/m")
    assert environment_problems(_Weights, settings) == []
    (snapshot / "w.safetensors").resolve().unlink()  # the blob is gone: a dangling link
    (problem,) = environment_problems(_Weights, settings)
    assert "w.safetensors" in problem and "missing or unreadable" in problem
    assert "not available" in device_problem("cuda:99") or "only" in device_problem("cuda:99")
    assert "unknown device" in device_problem("banana")
    bad_device = settings_for(_Weights, model_id=str(src.parent), device="cuda:99")
    assert any("cuda:99" in p for p in environment_problems(_Weights, bad_device))


def test_preflight_error_is_the_first_health_answer(tmp_path):
    """No LOADING first: go-livepeer would take LOADING as ready and register a runner that never serves."""
    srv = RunningServer(_Weights, settings_for(_Weights, model_dir=tmp_path), wait_ready=False,
                        preflight_error="model 'org/m' is not in MODEL_DIR")
    with srv:
        body = httpx.get(srv.url + "/health").json()
        assert body == {"status": "ERROR", "error": "preflight: model 'org/m' is not in MODEL_DIR"}
        r = httpx.post(srv.url + "/text-to-image", json={"prompt": "x"})
        assert r.status_code == 500 and "not in MODEL_DIR" in r.json()["detail"]["msg"]


def _serve_process(tmp_path: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "HF_HUB_OFFLINE": "1", "MODEL_DIR": str(tmp_path)}
    env.pop("RUNNER_ON_PREFLIGHT_FAILURE", None)
    proc = subprocess.Popen([sys.executable, "-m", "runner_sdk", "serve", "--pipeline", "llm", "--model-id",
                             "org/missing", "--device", "cpu", "--host", "127.0.0.1", "--port", str(port), *flags],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, f"http://127.0.0.1:{port}"


def test_serve_with_empty_model_dir_answers_error_from_the_first_health(tmp_path):
    proc, url = _serve_process(tmp_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                body = httpx.get(url + "/health").json()
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        assert body["status"] == "ERROR" and "org/missing" in body["error"], body
    finally:
        proc.terminate()
        out = proc.communicate(timeout=15)[0]
    assert "preflight: model 'org/missing'" in out


def test_serve_exits_1_before_binding_when_asked(tmp_path):
    proc, _url = _serve_process(tmp_path, "--on-preflight-failure", "exit")
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 1, out
    assert "preflight: model 'org/missing'" in out and "Uvicorn running" not in out


def test_import_weights_copies_under_a_hub_id(tmp_path, capsys):
    src = tmp_path / "my-folder"
    (src / "sub").mkdir(parents=True)
    (src / "config.json").write_text('{"a": 1}')
    (src / "sub" / "w.safetensors").write_bytes(b"weights")
    models = tmp_path / "models"
    assert main(["import-weights", str(src), "--model-id", "acme/espcn-x2", "--model-dir", str(models)]) == 0
    snapshot = resolve_snapshot("acme/espcn-x2", models, download=False)
    assert (snapshot / "sub" / "w.safetensors").read_bytes() == b"weights"
    assert (src / "sub" / "w.safetensors").read_bytes() == b"weights"  # copied, not moved
    assert "MODEL_ID=acme/espcn-x2" in capsys.readouterr().out
    _one_line_exit_2(capsys, ["import-weights", str(src), "--model-id", "espcn", "--model-dir", str(models)],
                     "--model-id", "org/name")


class _Closing(Runner):
    """Records `close()`; with `fail=True` its setup fails after starting something."""

    route = routes.TEXT_TO_IMAGE
    closed: list[str] = []
    fail = False

    def setup(self, ctx):
        if self.fail:
            raise RuntimeError("setup failed half way")

    def close(self):
        self.closed.append("closed")


def test_runner_close_runs_at_shutdown_and_after_a_failed_setup():
    _Closing.closed = []
    with RunningServer(_Closing, settings_for(_Closing)) as srv:
        assert httpx.get(srv.url + "/health").json()["status"] == "IDLE"
        assert _Closing.closed == []
    assert _Closing.closed == ["closed"]  # uvicorn's lifespan shutdown

    class Failing(_Closing):
        fail = True

    _Closing.closed = []
    with RunningServer(Failing, settings_for(Failing)) as srv:
        health = httpx.get(srv.url + "/health").json()
        assert health["status"] == "ERROR" and "half way" in health["error"]
        assert _Closing.closed == ["closed"]  # at once, not only at shutdown
    assert _Closing.closed == ["closed"]  # and not twice
