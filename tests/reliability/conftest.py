"""Fixtures of the reliability suite: each target's tiny synthetic model, built once per session, and one
shared in-process server per target (capacity 2, queue 2, AUTH_TOKEN set) that the fuzz, fault and auth
tests reuse, so each model loads once per session. Targets whose runner does not import yet are skipped."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from reliability.relkit import RunningServer, Target, require, start_server

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the hub


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory):
    """target -> MODEL_DIR holding its tiny synthetic model (built on first use)."""
    built: dict[str, Path] = {}

    def get(target: Target) -> Path:
        require(target)
        if target.name not in built:
            path = tmp_path_factory.mktemp(f"models-{target.name}")
            target.synthesize(path)
            built[target.name] = path
        return built[target.name]

    return get


@pytest.fixture(scope="session")
def servers(model_dirs, tmp_path_factory):
    """target -> a running in-process server with the token set (started on first use)."""
    running: dict[str, RunningServer] = {}

    def get(target: Target) -> RunningServer:
        if target.name not in running:
            model_dir = model_dirs(target) if target.real else tmp_path_factory.mktemp(f"empty-{target.name}")
            srv = start_server(target, model_dir)
            status = httpx.get(srv.url + "/health").json()
            assert status["status"] in {"IDLE", "OK"}, status
            running[target.name] = srv
        return running[target.name]

    yield get
    for srv in running.values():
        srv.__exit__(None, None, None)
