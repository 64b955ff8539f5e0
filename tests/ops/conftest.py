"""Shared fixtures for the operator-tooling tests: repository paths and a probe runner against a real server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def healthcheck_command(repo: Path) -> list[str]:
    """The exec-form HEALTHCHECK of docker/Dockerfile, as a list."""
    text = (repo / "docker" / "Dockerfile").read_text()
    m = re.search(r"^HEALTHCHECK [^\n]*\\\n\s*CMD (\[.*\])$", text, re.MULTILINE)
    assert m, "docker/Dockerfile has no exec-form HEALTHCHECK"
    return json.loads(m.group(1))


@pytest.fixture(scope="session")
def docker_healthcheck(repo: Path) -> list[str]:
    return healthcheck_command(repo)


def run_probe(command: list[str], port: int) -> int:
    """Run a probe command the way the container would (python = this interpreter, PORT = the server's)."""
    argv = [sys.executable if command[0] == "python" else command[0], *command[1:]]
    env = dict(os.environ, PORT=str(port))
    return subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode


@pytest.fixture(scope="session")
def probe():
    return run_probe
