"""Every GPU persona of the operator guide, planned from its default demand: the expected plan is the guide's
advice (warm pipeline, co-warm, cold ones, the GPU each lands on). Also: quantised LLMs, demand order, sizes
with units, figures by architecture, and how `validate` grades ids and capacities go-livepeer cannot route."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from runner_sdk.aimodels import demand, figures
from runner_sdk.aimodels import plan as planner
from runner_sdk.aimodels.validate import Severity, stops_node, validate_text

GiB = 1024**3


def plan_for(*sizes: str, items: list[str] | None = None) -> planner.Plan:
    gpus = [planner.gpu_from_text(i, s) for i, s in enumerate(sizes)]
    wanted = [demand.parse_item(i) for i in items] if items else None
    plan = planner.make_plan(None, gpus, demand=wanted)
    entries = planner.aimodels_entries(plan, token="tok")
    assert not stops_node(validate_text(json.dumps(entries), gpus=len(gpus)))
    return plan


def layout(plan: planner.Plan) -> dict[str, tuple[str, int]]:
    return {p.model.pipeline: (p.mode, p.gpu.index) for p in plan.placements}


def left(plan: planner.Plan) -> set[str]:
    return {lo.pipeline for lo in plan.left_out}


# --- consumer tier: audio-to-text and image-to-text warm together, llm on another GPU, no diffusion ---------
def test_rtx_2060_6gb_whisper_warm_blip_cold():
    plan = plan_for("RTX 2060=6GiB")
    assert layout(plan) == {"audio-to-text": ("warm", 0), "image-to-text": ("cold", 0)}
    assert left(plan) == {"llm", "segment-anything-2"}
    assert "consumer tier" in plan.tier


@pytest.mark.parametrize("size", ["8GiB", "12GiB"])
def test_rtx_3060_ti_8gb_and_3060_12gb_whisper_and_blip_warm_together(size):
    plan = plan_for(size)
    got = layout(plan)
    assert got["audio-to-text"] == got["image-to-text"] == ("warm", 0)
    assert not {"text-to-image", "image-to-image"} & set(got)  # diffusion left off this tier
    assert "llm" in left(plan)
    [llm] = [lo for lo in plan.left_out if lo.pipeline == "llm"]
    assert "QUANTIZE=int4" in llm.why and "what would change it" in llm.why


def test_rtx_3060_12gb_llm_first_is_offered_int4():
    plan = plan_for("12GiB", items=["llm", "audio-to-text"])
    [llm] = [p for p in plan.placements if p.model.pipeline == "llm"]
    assert (llm.mode, llm.quantize) == ("warm", "int4") and "QUANTIZE=int4" in llm.why
    assert 6 * 10**9 <= llm.peak_bytes <= 8 * 10**9  # the guide's Llama 8B Q4 ~6-8 GB
    assert layout(plan)["audio-to-text"] == ("cold", 0)
    assert ("QUANTIZE", "int4") in planner.runner_env(llm)


# --- 24 GB tier: text-to-image warm, Whisper co-warm, image-to-image cold --------------------------------
@pytest.mark.parametrize("size", ["RTX 3090=24GiB", "A5000=24GiB", "RTX 4090=24GiB"])
def test_24gb_sdxl_warm_whisper_cowarm_img2img_cold(size):
    plan = plan_for(size)
    assert layout(plan) == {"text-to-image": ("warm", 0), "audio-to-text": ("warm", 0),
                            "image-to-image": ("cold", 0)}
    assert left(plan) == {"llm"}
    t2i = plan.placements[0]
    assert t2i.model.model_id == "SG161222/RealVisXL_V4.0_Lightning" and t2i.external
    assert "co-warm beside text-to-image" in plan.placements[1].why


def test_4090_plus_2060_diffusion_on_gpu0_whisper_on_gpu1():
    plan = plan_for("RTX 4090=24GiB", "RTX 2060=6GiB")
    got = layout(plan)
    assert got["text-to-image"] == ("warm", 0) and got["image-to-image"] == ("cold", 0)
    assert got["audio-to-text"] == ("warm", 1)
    # The guide also puts the LLM on GPU1; Llama 8B needs ~8.4 GiB even at int4, more than a 2060 has beside
    # Whisper, so it co-warms as int4 beside SDXL on GPU0 (plan.md says why).
    [llm] = [p for p in plan.placements if p.model.pipeline == "llm"]
    assert (llm.gpu.index, llm.quantize) == (0, "int4")
    assert planner.nvidia_list(plan) == [0]


def test_two_4090s_sdxl_on_gpu0_whisper_and_llm_on_gpu1():
    plan = plan_for("24GiB", "24GiB")
    got = layout(plan)
    assert got == {"text-to-image": ("warm", 0), "image-to-image": ("cold", 0), "audio-to-text": ("warm", 1),
                   "llm": ("warm", 1)}
    [llm] = [p for p in plan.placements if p.model.pipeline == "llm"]
    assert llm.quantize == "int8"  # bf16 does not fit beside Whisper with headroom; int8 does
    assert not plan.left_out


# --- high tier -----------------------------------------------------------------------------------------
def test_a100_40gb_full_access_with_capacity():
    plan = plan_for("A100=40GiB")
    got = layout(plan)
    assert got["text-to-image"] == got["audio-to-text"] == got["image-to-image"] == ("warm", 0)
    assert {got["llm"][0], got["upscale"][0]} <= {"warm", "cold"}
    assert max(p.capacity for p in plan.placements) > 1


@pytest.mark.parametrize("name", ["A100 80GB", "H100"])
def test_80gb_several_diffusion_warm_live_video_and_capacity(name):
    plan = plan_for(f"{name}=80GiB")
    got = layout(plan)
    for pipeline in ("text-to-image", "image-to-image", "audio-to-text", "llm", "live-video-to-video"):
        assert got[pipeline] == ("warm", 0), pipeline
    assert [p for p in plan.placements if p.model.pipeline == "llm"][0].quantize == ""
    assert any(p.capacity > 1 for p in plan.placements)
    assert plan.free(plan.gpus[0]) < 16 * GiB  # the card is used, not left 40 GiB idle


# --- sizes, demand, figures ------------------------------------------------------------------------------
def test_size_needs_a_unit_and_gb_is_explained(tmp_path):
    with pytest.raises(ValueError, match="no unit"):
        planner.parse_size("24")
    run = [sys.executable, "-m", "runner_sdk.aimodels", "plan", "--token", "t"]
    bad = subprocess.run([*run, "--gpu", "24"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no unit" in bad.stderr
    ok = subprocess.run([*run, "--gpu", "24GB"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "22.4 GiB" in ok.stdout and "--gpu 24GiB" in ok.stdout


def test_demand_file_and_guide_example_model(tmp_path):
    path = tmp_path / "demand.txt"
    path.write_text("# what I earn from\ntext-to-image:SG161222/RealVisXL_V4.0_Lightning\naudio-to-text=cold\n")
    items = demand.read_file(path)
    assert [(d.pipeline, d.want) for d in items] == [("text-to-image", "warm"), ("audio-to-text", "cold")]
    plan = planner.make_plan(None, [planner.GPU(0, 24 * GiB)], demand=items)
    assert layout(plan) == {"text-to-image": ("warm", 0), "audio-to-text": ("cold", 0)}
    with pytest.raises(ValueError):
        demand.parse_item("text-to-image=hot")


@pytest.mark.parametrize("model_id,low,high", [
    ("SG161222/RealVisXL_V4.0_Lightning", 11, 13), ("stabilityai/stable-diffusion-xl-base-1.0", 11, 13),
    ("stabilityai/sd-turbo", 4, 6), ("black-forest-labs/FLUX.1-schnell", 30, 40)])
def test_figures_for_any_diffusion_checkpoint(model_id, low, high):
    fig = figures.estimate("text-to-image", model_id)
    assert fig.source == "estimate" and low * 10**9 <= fig.peak_vram_bytes <= high * 10**9


def test_figures_for_every_whisper_and_llama_size():
    sizes = [figures.whisper(f"openai/whisper-{s}").peak_vram_bytes for s in ("tiny", "base", "small", "medium")]
    assert sizes == sorted(sizes) and figures.whisper("openai/whisper-large-v3").warm_vram_bytes == 3 * 10**9
    for mid in ("meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.2-3B-Instruct",
                "meta-llama/Meta-Llama-3.1-8B-Instruct", "meta-llama/Meta-Llama-3.1-70B-Instruct"):
        peaks = [figures.llm(mid, q).peak_vram_bytes for q in figures.QUANTIZATIONS]
        assert peaks == sorted(peaks, reverse=True), mid


def test_every_pipeline_has_figures_for_its_default_model():
    from runner_sdk import pipelines

    for name in pipelines.PIPELINES:
        assert figures.estimate(name, demand.default_model(name)) is not None, name


# --- validate: what go-livepeer does with ids it cannot route and capacity 0 -----------------------------
def _grade(**entry) -> set[tuple[str, Severity]]:
    base = {"pipeline": "audio-to-text", "model_id": "openai/whisper-large-v3", "price_per_unit": 1}
    return {(f.path, f.severity) for f in validate_text(json.dumps([{**base, **entry}]), gpus=1)}


def test_capacity_zero_is_an_entry_that_never_serves():
    assert ("$[0].capacity", Severity.IGNORED) in _grade(capacity=0, url="http://a:8000", token="t", warm=True)
    assert ("$[0].capacity", Severity.IGNORED) in _grade(capacity=0, warm=True)


def test_unroutable_ids_ignored_or_stopping_when_managed_warm():
    for model_id in ("whisper-large-v3", "OpenAI/Whisper-Large-V3"):
        assert ("$[0].model_id", Severity.IGNORED) in _grade(model_id=model_id, url="http://a:8000", token="t")
    # A managed warm container is loaded at boot: no weights under a bare name, start-up aborts.
    assert ("$[0].model_id", Severity.STOPS_NODE) in _grade(model_id="whisper-large-v3", warm=True)
    assert ("$[0].model_id", Severity.IGNORED) in _grade(model_id="OpenAI/Whisper-Large-V3", warm=True)
    live = validate_text(json.dumps([{"pipeline": "live-video-to-video", "model_id": "comfyui",
                                      "price_per_unit": 1}]))
    assert not [f for f in live if f.path == "$[0].model_id"]


# --- the committed examples in docs/plan-examples are what the planner prints today ----------------------
EXAMPLES = {"24gb": ["--gpu", "RTX 3090=24GiB"], "12gb": ["--gpu", "RTX 3060=12GiB"],
            "4090-2060": ["--gpu", "RTX 4090=24GiB", "--gpu", "RTX 2060=6GiB"]}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_docs_plan_examples_are_current(repo, tmp_path, name):
    proc = subprocess.run([sys.executable, "-m", "runner_sdk.aimodels", "plan", *EXAMPLES[name], "--token",
                           "CHANGE_ME", "--out", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    # The layout (GPU, warm/cold, pipeline, model), not the wording: a runner added to the pipeline table turns
    # a managed entry into an external one without changing the advice.
    def shape(text: str) -> list[tuple[str, ...]]:
        return re.findall(r"^## (GPU \d+)|^- \*\*(warm|cold)\*\* (\S+) `([^`]+)`|^- (\S+) `[^`]+`: needs", text, re.M)

    committed = (repo / "docs" / "plan-examples" / name / "plan.md").read_text()
    assert shape((tmp_path / "plan.md").read_text()) == shape(committed), \
        f"regenerate docs/plan-examples/{name} (the commands are in docs/deploy.md)"
