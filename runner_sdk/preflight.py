"""Checks before the first `/health` answer: what can be known without loading the model.

go-livepeer's start-up probe treats every JSON `/health` status but ERROR as ready, LOADING included
(contract 3.1), so a runner that can never serve must say so before it is registered. `runner-sdk serve` runs
two kinds of check before uvicorn binds:

- settings (`route_problem`, and `settings.load_settings` for the values): a PIPELINE that the runner's route
  does not serve is a setting error, one line and exit 2, like `--capacity 0`;
- the environment (`environment_problems`): every repository of the runner's `download_plan` is in
  MODEL_DIR with readable files (a missing model is only a problem when the hub may not be used,
  HF_HUB_OFFLINE=1, or no file can be found at all), and the device exists.

An environment failure is served as `/health` ERROR with the reason from the very first answer (no load is
attempted), or, with RUNNER_ON_PREFLIGHT_FAILURE=exit, the process exits 1 before binding (docs/deploy.md
says which suits external and managed runners).
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from .pipelines import PIPELINES
from .resolve import ModelNotFound, hub_offline, resolve_snapshot
from .runner import Runner
from .settings import RunnerSettings

__all__ = ["device_problem", "environment_problems", "model_problems", "route_problem"]


def route_problem(runner_cls: type[Runner], pipeline: str) -> str | None:
    """Why `runner_cls` cannot serve PIPELINE=`pipeline`, or None when its route is that pipeline's.

    Args:
        runner_cls: the runner class. pipeline: the PIPELINE setting.
    Returns:
        A one-line reason (naming the pipeline the route serves), or None.
    """
    path = runner_cls.route.path
    row = PIPELINES.get(pipeline)
    expected = row.path if row is not None else f"/{pipeline}"
    if path == expected:
        return None
    serves = next((p.name for p in PIPELINES.values() if p.path == path), path.strip("/"))
    return (f"{runner_cls.__module__}:{runner_cls.__qualname__} serves {path} (pipeline {serves}), "
            f"not {pipeline}")


def _matches(rel: str, patterns: list[str] | None) -> bool:
    return patterns is None or any(fnmatch.fnmatch(rel, p) for p in patterns)


def _snapshot_problems(repo_id: str, snapshot: Path, patterns: list[str] | None) -> list[str]:
    """Files of the plan in `snapshot`: at least one, each one readable (a dangling blob link is not)."""
    found, unreadable = 0, []
    for path in sorted(snapshot.rglob("*")):
        rel = path.relative_to(snapshot).as_posix()
        if path.is_dir() or not _matches(rel, patterns):
            continue
        found += 1
        if not path.exists() or not os.access(path, os.R_OK):
            unreadable.append(rel)
    if unreadable:
        return [f"model {repo_id!r}: file(s) missing or unreadable in {snapshot}: {', '.join(unreadable[:5])}"]
    if not found:
        wanted = ", ".join(patterns) if patterns else "any file"
        return [f"model {repo_id!r}: no file matching {wanted} in {snapshot}"]
    return []


def model_problems(runner_cls: type[Runner], settings: RunnerSettings) -> list[str]:
    """Every repository of `runner_cls.download_plan(MODEL_ID)` in MODEL_DIR, each with readable files.

    A runner that reads no files from MODEL_DIR says so with a `download_plan` returning [].

    Args:
        runner_cls: the runner class. settings: MODEL_ID and MODEL_DIR.
    Returns:
        One line per problem; empty when all is there (or the hub may still provide what is missing).
    """
    problems = []
    for repo_id, patterns in runner_cls.download_plan(settings.model_id):
        try:
            snapshot = resolve_snapshot(repo_id, settings.model_dir, patterns, download=False)
        except ModelNotFound as exc:
            if hub_offline():
                problems.append(str(exc))
            continue  # the hub may be used: the load downloads it
        problems += _snapshot_problems(repo_id, snapshot, patterns)
    return problems


def device_problem(requested: str) -> str | None:
    """Why RUNNER_DEVICE=`requested` cannot be used here (unknown, no CUDA, index too high), or None."""
    from .device import DeviceError, select_device

    try:
        select_device(requested)
    except DeviceError as exc:
        return str(exc)
    return None


def environment_problems(runner_cls: type[Runner], settings: RunnerSettings) -> list[str]:
    """The model's files and the device, checked before the server answers.

    Args:
        runner_cls: the runner class. settings: the process settings.
    Returns:
        One line per problem; empty when the runner may load.
    """
    problems = model_problems(runner_cls, settings)
    device = device_problem(settings.device)
    if device is not None:
        problems.append(device)
    return problems
