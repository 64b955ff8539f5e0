"""The planner on fixed inputs (chosen models, measured results, CLI files); its output must validate. The guide's
personas are in test_ops_plan_personas.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from runner_sdk.aimodels import plan as planner
from runner_sdk.aimodels.demand import Demand
from runner_sdk.aimodels.results import SCHEMA, BenchResults, ResultsError, load_reference, load_results
from runner_sdk.aimodels.validate import Severity, stops_node, validate_text
from runner_sdk.settings import RunnerSettings

GiB = 1024**3
T2I = ("text-to-image", "ByteDance/SDXL-Lightning-4step")
A2T = ("audio-to-text", "openai/whisper-large-v3")
LLM = ("llm", "meta-llama/Meta-Llama-3.1-8B-Instruct")


def want(*keys: tuple[str, str]) -> list[Demand]:
    return [Demand(p, m) for p, m in keys]


def gpus(*sizes: str) -> list[planner.GPU]:
    return [planner.GPU(i, planner.parse_size(s)) for i, s in enumerate(sizes)]


def placed(plan: planner.Plan) -> dict[tuple[str, str], int]:
    return {p.model.key: p.gpu.index for p in plan.placements}


def assert_valid(plan: planner.Plan) -> list[dict]:
    entries = planner.aimodels_entries(plan, token="tok")
    findings = validate_text(json.dumps(entries), gpus=len(plan.gpus))
    assert not stops_node(findings), [str(f) for f in findings]
    assert not [f for f in findings if f.severity is Severity.IGNORED], [str(f) for f in findings]
    return entries


def test_reference_table_is_labelled_as_estimates():
    ref = load_reference()
    assert ref.source == "estimate" and "ESTIMATES" in ref.note
    assert {m.key for m in ref.models} == {T2I, A2T, LLM}
    assert all(m.source == "estimate" and m.notes.startswith("ESTIMATE") for m in ref.models)
    assert ref.find(*A2T).warm_vram_bytes == 3_000_000_000  # the operator guide's ~3 GB


def test_parse_size():
    assert planner.parse_size("24GiB") == 24 * GiB
    assert planner.parse_size("12GB") == 12 * 10**9
    assert planner.parse_size("80 gib") == 80 * GiB
    for bad in ("lots", "1024", "24"):  # a size needs its unit
        with pytest.raises(ValueError):
            planner.parse_size(bad)


def test_24gb_card_sdxl_and_whisper_share_it():
    plan = planner.make_plan(load_reference(), gpus("24GiB"), demand=want(T2I, A2T))
    assert placed(plan) == {T2I: 0, A2T: 0}
    assert plan.used(plan.gpus[0]) <= 24 * GiB
    entries = assert_valid(plan)
    # Two runners on one GPU: distinct host ports, each entry pointing at its own runner.
    assert len({e["url"] for e in entries}) == 2


def test_demand_order_decides_who_gets_the_memory():
    """The LLM first on one 24 GiB card takes it in bf16; SDXL then does not fit warm beside it."""
    plan = planner.make_plan(load_reference(), gpus("24GiB"), demand=want(LLM, T2I, A2T))
    assert plan.placements[0].model.key == LLM and plan.placements[0].quantize == ""
    assert T2I in {lo.key for lo in plan.left_out} | {p.model.key for p in plan.placements if p.mode == "cold"}
    assert_valid(plan)


def test_12gb_card_with_no_headroom_takes_sdxl():
    # 12 GB peak fits 12 GiB without margin: headroom is what decides.
    plan = planner.make_plan(load_reference(), gpus("12GiB"), headroom=0.0, demand=want(T2I))
    assert placed(plan) == {T2I: 0}
    plan = planner.make_plan(load_reference(), gpus("12GiB"), demand=want(T2I))
    assert plan.placements == [] or plan.placements[0].mode == "cold"


def test_two_mixed_cards_spread_over_gpus():
    plan = planner.make_plan(load_reference(), gpus("24GiB", "12GiB"), demand=want(T2I, A2T))
    # SDXL onto the card that fits it; Whisper away from the diffusion GPU.
    assert placed(plan) == {T2I: 0, A2T: 1}
    assert_valid(plan)


def test_managed_mode_one_warm_model_per_gpu():
    plan = planner.make_plan(load_reference(), gpus("80GiB", "24GiB"), managed=True, demand=want(LLM, T2I, A2T))
    warm = {p.model.key: p.gpu.index for p in plan.placements if p.mode == "warm"}
    assert warm == {LLM: 0, T2I: 1}
    assert all(not p.external for p in plan.placements)
    entries = planner.aimodels_entries(plan, token="unused", sfast=True)
    assert all("url" not in e and "token" not in e for e in entries)
    assert {e["pipeline"]: e.get("optimization_flags") for e in entries if e.get("warm")} == {
        "llm": None, "text-to-image": {"SFAST": True}}
    findings = validate_text(json.dumps(entries), gpus=2)
    assert not stops_node(findings)
    assert planner.docker_run_lines(plan) == []
    assert "-aiRunnerImageOverrides" in planner.go_livepeer_flags(plan)


def _measured(tmp_path, **overrides) -> str:
    data = {
        "schema": SCHEMA, "source": "measured", "machine": {"gpu_name": "Test GPU", "gpu_memory_bytes": 24 * GiB},
        "models": [{
            "pipeline": "audio-to-text", "model_id": "openai/whisper-large-v3",
            "warm_vram_bytes": 3 * GiB, "peak_vram_bytes": 4 * GiB, "cold_load_s": 5.0,
            "latency_s": {"p50": 0.5, "p95": 0.7}, "throughput": {"unit": "audio_ms", "units_per_s": 60000.0},
            "by_capacity": [
                {"capacity": 1, "peak_vram_bytes": 4 * GiB, "units_per_s": 60000.0},
                {"capacity": 2, "peak_vram_bytes": 5 * GiB, "units_per_s": 90000.0},
                {"capacity": 4, "peak_vram_bytes": 7 * GiB, "units_per_s": 88000.0},
            ],
            "weights": "real", "source": "measured",
        }],
    }
    data["models"][0].update(overrides)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_measured_results_pick_the_best_capacity_and_its_peak(tmp_path):
    results = load_results(_measured(tmp_path))
    plan = planner.make_plan(results, gpus("8GiB"), demand=want(A2T))
    [p] = plan.placements
    assert (p.capacity, p.peak_bytes) == (2, 5 * GiB)
    assert p.need_bytes == int(5 * GiB * 1.2)
    assert assert_valid(plan)[0]["capacity"] == 2
    # An explicit capacity wins, and uses the peak measured at that capacity.
    [p4] = planner.make_plan(results, gpus("12GiB"), capacities={"audio-to-text": 4}, demand=want(A2T)).placements
    assert (p4.capacity, p4.peak_bytes) == (4, 7 * GiB)


def test_cpu_results_without_vram_fall_back_to_labelled_figures(tmp_path):
    results = load_results(_measured(tmp_path, warm_vram_bytes=None, peak_vram_bytes=None, by_capacity=[]))
    plan = planner.make_plan(results, gpus("24GiB"), demand=want(A2T))
    [p] = plan.placements
    assert p.model.source == "estimate" and p.model.notes.startswith("ESTIMATE")


def test_results_loader_rejects_other_schemas(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"schema": "something-else", "models": []}))
    with pytest.raises(ResultsError):
        load_results(path)
    path.write_text(json.dumps({"schema": SCHEMA, "models": [{"pipeline": "llm"}]}))
    with pytest.raises(ResultsError):
        load_results(path)
    # A results object round-trips through its own writer.
    ref = load_reference()
    path.write_text(ref.dump_json())
    assert load_results(path) == ref
    assert isinstance(ref, BenchResults)


def test_docker_run_lines_use_the_settings_env_names():
    plan = planner.make_plan(load_reference(), gpus("24GiB", "12GiB"), demand=want(T2I, A2T))
    text = "\n".join(planner.docker_run_lines(plan, sfast=True))
    assert "--gpus device=0" in text and "--gpus device=1" in text
    assert "-p 127.0.0.1:9000:8000" in text and "-p 127.0.0.1:9001:8000" in text
    env_names = set(re.findall(r"-e ([A-Z_]+)", text))
    fields = set(RunnerSettings.model_fields)
    aliases = {a.lower() for f in RunnerSettings.model_fields.values() if f.validation_alias
               for a in getattr(f.validation_alias, "choices", [])}
    for name in env_names:
        assert name.lower() in fields | aliases, name
    assert {"PIPELINE", "MODEL_ID", "MODEL_DIR", "AUTH_TOKEN", "RUNNER_CAPACITY", "SFAST"} <= env_names
    # SFAST only for the diffusion runner.
    t2i_block, a2t_block = text.split("# GPU 1")
    assert "SFAST=true" in t2i_block and "SFAST" not in a2t_block


def test_cli_plan_writes_files_that_validate(tmp_path):
    out = tmp_path / "plan"
    proc = subprocess.run([sys.executable, "-m", "runner_sdk.aimodels", "plan", "--gpu", "24GiB", "--gpu", "12GiB",
                           "--model", ":".join(T2I), "--model", ":".join(A2T), "--out", str(out),
                           "--compose", str(tmp_path / "compose.yml")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "ESTIMATES" in proc.stdout
    entries = json.loads((out / "aiModels.json").read_text())
    assert [e["pipeline"] for e in entries] == ["text-to-image", "audio-to-text"]
    token = (out / "runners.env").read_text().strip().split("=", 1)[1]
    assert all(e["token"] == token for e in entries) and len(token) >= 24
    assert (out / "runners.env").stat().st_mode & 0o077 == 0
    check = subprocess.run([sys.executable, "-m", "runner_sdk.aimodels", "validate", "--gpus", "2",
                            str(out / "aiModels.json")], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout
    script = out / "run-runners.sh"
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0
    assert script.read_text().count("docker run -d") == 2


def test_cli_plan_json_and_errors():
    run = [sys.executable, "-m", "runner_sdk.aimodels", "plan"]
    proc = subprocess.run([*run, "--gpu", "12GiB", "--json", "--token", "t"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert {p["model_id"] for p in report["placements"]} >= {A2T[1]}
    [a2t] = [e for e in report["aimodels"] if e["pipeline"] == "audio-to-text"]
    assert a2t["token"] == "t" and report["findings"] == []
    unknown = subprocess.run([*run, "--gpu", "12GiB", "--json", "--model", "llm:nope/nope"], capture_output=True,
                             text=True, timeout=60)
    assert unknown.returncode == 0 and "no figures" in json.loads(unknown.stdout)["left_out"][0]["reason"]
    guide = subprocess.run([*run, "--gpu", "24GiB", "--json", "--model",
                            "text-to-image:SG161222/RealVisXL_V4.0_Lightning"], capture_output=True, text=True,
                           timeout=60)
    assert [p["mode"] for p in json.loads(guide.stdout)["placements"]] == ["warm"]


def test_cli_plan_without_sizes_detects_with_nvml_or_says_how():
    try:
        found = planner.detect_gpus()
    except Exception:
        found = None
    proc = subprocess.run([sys.executable, "-m", "runner_sdk.aimodels", "plan", "--token", "t"],
                          capture_output=True, text=True, timeout=60)
    if found:  # a GPU machine: the plan uses the detected cards
        assert proc.returncode == 0 and found[0].name in proc.stdout
    else:
        assert proc.returncode == 2 and "--gpu 24GiB" in proc.stderr


def test_capacity_is_lowered_when_the_best_one_does_not_fit(tmp_path):
    results = load_results(_measured(tmp_path))
    # Best throughput is capacity 2 (peak 5 GiB -> needs 6 GiB); a 5.5 GiB card only takes capacity 1 (4.8 GiB).
    [p] = planner.make_plan(results, gpus("5.5GiB"), demand=want(A2T)).placements
    assert (p.capacity, p.peak_bytes) == (1, 4 * GiB)
    # A capacity the operator fixed is not lowered: the model is left out instead.
    plan = planner.make_plan(results, gpus("5.5GiB"), capacities={"audio-to-text": 2}, demand=want(A2T))
    assert [p.mode for p in plan.placements] == ["cold"]  # not warm at capacity 2; on demand instead


def test_parse_size_spellings_bytesize_lacks():
    """"24Gi" (no B) is normalised before pydantic's ByteSize; trailing words are not sizes."""
    assert planner.parse_size("24Gi") == 24 * GiB
    assert planner.parse_size("24G") == 24 * 10**9
    assert planner.parse_size(" 5.5 GiB ") == int(5.5 * GiB)
    for bad in ("", "24GiB of RAM", "-1GB", "24 ZiBB"):
        with pytest.raises(ValueError, match="not a memory size"):
            planner.parse_size(bad)


def test_detect_gpus_reads_the_shared_nvml_session(monkeypatch):
    from runner_sdk import nvml

    monkeypatch.setattr(nvml, "gpus", lambda: [nvml.Gpu(0, "Card A", 24 * GiB), nvml.Gpu(1, "Card B", 12 * GiB)])
    found = planner.detect_gpus()
    assert [(g.index, g.memory_bytes, g.name) for g in found] == [(0, 24 * GiB, "Card A"), (1, 12 * GiB, "Card B")]


def test_sfast_goes_to_the_table_diffusion_pipelines_only():
    from runner_sdk import pipelines

    assert set(planner.DIFFUSION) == {p.name for p in pipelines.PIPELINES.values() if p.diffusion}
