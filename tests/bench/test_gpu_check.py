"""The GPU check's pieces without a GPU or a download (the whole check runs in `make gpu-rehearse`): the wheel
plan splits into commands under 64 MiB each, the requirements' markers are read as the host's Python would,
and the driver skips what would overrun its budget, lists it, and keeps going after a failed section."""

from __future__ import annotations

import importlib
import sys
import time
import zipfile
from pathlib import Path

import pytest

GPU = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu"
MIB = 1024**2


def load(name: str):
    """A module of benchmarks/gpu (they import each other by plain name, as the scripts run there)."""
    if str(GPU) not in sys.path:
        sys.path.insert(0, str(GPU))
    return importlib.import_module(name)


def fake_wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
            f"Requires-Dist: {r}\n" for r in requires)
        z.writestr(f"{name}-{version}.dist-info/METADATA", meta)
    return path


def test_requirements_name_their_only_pipelines_and_every_carried_one_has_a_pin():
    wheels = load("wheels")
    roots = {r.name: r for r in wheels.read_roots()}
    assert roots["av"].only == frozenset({"audio-to-text"}) and roots["diffusers"].only is None
    pins = wheels.read_pins()
    host = wheels.read_host()
    assert {"torch", "transformers", "accelerate", "safetensors", "numpy", "nvidia-ml-py"} <= host
    assert not {"diffusers", "fastapi", "uvicorn", "pydantic", "av", "deepcache", "torchao"} & host
    assert all(r.pin or r.name in pins or r.name in host for r in roots.values())


def test_markers_are_read_for_the_hosts_python(tmp_path):
    wheels = load("wheels")
    wheel = fake_wheel(tmp_path, "demo", "1.0", ["a", "b; python_version < '3.12'", "c; extra == 'x'",
                                                    "d; sys_platform == 'win32'"])
    assert wheels.requires(wheel, "3.12") == ["a"]
    assert wheels.requires(wheel, "3.11") == ["a", "b"]


def test_plan_moves_the_heavy_only_requirement_to_a_command_of_its_own(tmp_path, monkeypatch):
    prepare, wheels = load("prepare"), load("wheels")
    store = tmp_path / "store"
    store.mkdir()
    sizes = {"fastapi": 1 * MIB, "av": 35 * MIB, "diffusers": 25 * MIB, "torchao": 3 * MIB}

    def fake_resolve(roots, pins, host, python, where):
        closure = wheels.Closure()
        for r in roots:
            path = store / f"{r.name}-1.0-py3-none-any.whl"
            path.write_bytes(b"\0" * sizes[r.name])
            closure.carried[r.name] = path
        return closure

    roots = [wheels.Root("fastapi"), wheels.Root("diffusers"), wheels.Root("av", only=frozenset({"audio-to-text"})),
             wheels.Root("torchao", only=frozenset({"llm"}))]
    monkeypatch.setattr(prepare, "resolve", fake_resolve)
    monkeypatch.setattr(prepare, "served_pipelines", lambda: ["text-to-image", "audio-to-text", "llm"])
    tree = 2 * MIB
    parts = prepare.plan(roots, {}, set(), "3.12", store, tree)
    assert [p.pipelines for p in parts] == [["text-to-image", "llm"], ["audio-to-text"]]
    assert all(p.sends(tree) <= prepare.LIMIT_BYTES for p in parts)
    assert set(parts[1].closure.carried) == {"fastapi", "diffusers", "av"}  # what audio-to-text's part needs
    one = prepare.plan(roots, {}, set(), "3.12", store, tree, limit=100 * MIB)
    assert len(one) == 1  # when everything fits, one command
    with pytest.raises(RuntimeError, match="nothing more can move"):
        prepare.plan(roots, {}, set(), "3.12", store, tree, limit=30 * MIB)


def test_the_working_tree_is_measured_from_git():
    prepare = load("prepare")
    size = prepare.tree_bytes()
    assert 100_000 < size < prepare.LIMIT_BYTES  # what travels besides the wheels


def test_sections_over_the_budget_are_skipped_and_listed_and_a_failure_does_not_stop_the_rest(tmp_path):
    sections = load("sections")
    gpu_check = load("gpu_check")
    calls = []

    def ok(ctx):
        calls.append("ok")
        return {"n": 1}

    def boom(ctx):
        calls.append("boom")
        raise RuntimeError("no kernel image")

    plan = [sections.Section("a", (), {"full": 1, "tiny": 1}, ok),
            sections.Section("b", (), {"full": 1, "tiny": 1}, boom),
            sections.Section("c", (), {"full": 10_000, "tiny": 10_000}, ok),
            sections.Section("d", (), {"full": 1, "tiny": 1}, ok)]
    ctx = sections.Context(out=tmp_path, scale="tiny", device="cpu", requests=1, synth_dir=tmp_path / "m",
                           model_dir=tmp_path / "none", deadline=time.monotonic() + 60)
    try:
        done = gpu_check.run_sections(ctx, plan, "tiny")
    finally:
        __import__("shutil").rmtree(ctx.details, ignore_errors=True)
    assert calls == ["ok", "boom", "ok"]
    assert [done[n]["status"] for n in "abcd"] == ["ok", "failed", "skipped", "ok"]
    assert "no kernel image" in done["b"]["error"] and "needs ~10000 s" in done["c"]["reason"]


def test_a_part_runs_its_pipelines_sections_and_the_tests():
    gpu_check = load("gpu_check")
    names = [s.name for s in gpu_check.choose(["audio-to-text"], "")]
    assert names == ["bench audio-to-text", "correctness (pytest -m gpu)"]
    every = [s.name for s in gpu_check.choose(["text-to-image", "llm", "audio-to-text"], "")]
    assert every[:3] == ["bench text-to-image", "bench llm", "bench audio-to-text"]  # most valuable first
    with pytest.raises(SystemExit, match="no such section"):
        gpu_check.choose(["audio-to-text"], "bench llm")
