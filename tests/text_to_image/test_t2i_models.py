"""Model ids load through their own paths (contract 8.1): Lightning's forced steps and trailing Euler,
RealVisXL and generic SDXL via AutoPipeline, Turbo's guidance, the fp16-variant choice, the 1-step error,
the safety checker's absence, and the full-scale synth's parameter counts."""

from __future__ import annotations

import httpx
import pytest
from diffusers import EulerDiscreteScheduler
from text_to_image.t2i_support import GENERIC, LIGHTNING, REALVIS, TURBO, generate, info, png_image, serve

from runners.text_to_image.models import UnsupportedModel, classify, download_plan, load_plan


def trailing_timesteps(steps: int) -> list[float]:
    scheduler = EulerDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                       timestep_spacing="trailing")
    scheduler.set_timesteps(steps)
    return [float(t) for t in scheduler.timesteps]


@pytest.mark.parametrize(("model_id", "steps"), [(f"{LIGHTNING}-4step", 4), (f"{LIGHTNING}-8step", 8),
                                                 (LIGHTNING, 8)])
def test_lightning_runs_forced_steps_on_the_trailing_schedule(model_dir, model_id, steps):
    with serve(model_id, model_dir) as srv:
        facts = info(srv)
        assert facts["status"] == "IDLE", facts["error"]
        runner = facts["runner"]
        assert (runner["pipeline_class"], runner["scheduler"], runner["timestep_spacing"]) == (
            "StableDiffusionXLPipeline", "EulerDiscreteScheduler", "trailing")
        # The base has fp16 files only (as downloaded): the variant is read, upcast to fp32 on the CPU.
        assert (facts["dtype"], runner["variant"]) == ("float32", "fp16")
        r = generate(srv, prompt="a cat", num_inference_steps=30, guidance_scale=9.0, seed=1)
        assert r.status_code == 200, r.text
        call = srv.host.runner.last_call
        assert call["steps_run"] == steps and call["guidance_scale"] == 0.0
        assert call["timesteps"] == trailing_timesteps(steps)
        assert call["timesteps"][0] == 999.0  # trailing starts at the last training step
        unet = srv.host.runner.pipe.unet
        assert unet.device.type == "cpu" and not any(p.is_meta for p in unet.parameters())
        if steps == 4:  # the contract's defaults: a body with only a prompt is a 1024x576 (WxH) image
            r = httpx.post(srv.url + "/text-to-image", json={"prompt": "a cat"}, timeout=120)
            assert r.status_code == 200, r.text
            assert png_image(r.json()["images"][0]["url"]).size == (1024, 576)


def test_two_step_id_loads_its_own_unet_file(lightning2, model_dir):
    # Each step count's file holds different weights: same seed and prompt, different image than 4-step.
    with serve(f"{LIGHTNING}-4step", model_dir) as four:
        a = generate(four, prompt="a cat", seed=3).json()["images"][0]["url"]
    b = generate(lightning2, prompt="a cat", seed=3).json()["images"][0]["url"]
    assert lightning2.host.runner.last_call["steps_run"] == 2
    assert a != b


def test_unsupported_lightning_step_count_is_an_error_state(model_dir):
    with serve(f"{LIGHTNING}-1step", model_dir) as srv:
        health = httpx.get(srv.url + "/health").json()
        assert health["status"] == "ERROR"
        assert "1-step is not supported" in health["error"]
        r = generate(srv, prompt="a cat")
        assert r.status_code == 500 and "failed to load" in r.json()["detail"]["msg"]


def test_realvisxl_uses_the_generic_path_with_request_steps_and_guidance(model_dir):
    with serve(REALVIS, model_dir) as srv:
        runner = info(srv)["runner"]
        assert runner["lightning"] is False and runner["forced_steps"] is None
        assert runner["pipeline_class"] == "StableDiffusionXLPipeline"
        # Both fp32 and fp16 files exist: fp32 files on the CPU, no variant.
        assert runner["variant"] is None
        r = generate(srv, prompt="a cat", num_inference_steps=3, guidance_scale=5.0, seed=1)
        assert r.status_code == 200, r.text
        call = srv.host.runner.last_call
        assert (call["steps_run"], call["guidance_scale"]) == (3, 5.0)
        assert call["timestep_spacing"] == "leading"


def test_turbo_forces_guidance_zero_but_keeps_request_steps(model_dir):
    with serve(TURBO, model_dir) as srv:
        r = generate(srv, prompt="a cat", num_inference_steps=2, guidance_scale=8.0, seed=1)
        assert r.status_code == 200, r.text
        call = srv.host.runner.last_call
        assert (call["steps_run"], call["guidance_scale"]) == (2, 0.0)
        assert call["scheduler"] == "EulerAncestralDiscreteScheduler"


def test_generic_id_defaults_and_steps_below_one(generic):
    r = generate(generic, prompt="a cat", num_inference_steps=0, seed=2)  # < 1: the pipeline's default
    assert r.status_code == 200, r.text
    assert generic.host.runner.last_call["steps_run"] == 50
    assert generic.host.runner.last_call["guidance_scale"] == 7.5
    assert png_image(r.json()["images"][0]["url"]).size == (64, 64)


def test_step_bound_applies_except_where_steps_are_forced(generic, lightning2):
    r = generate(generic, prompt="a cat", num_inference_steps=201)
    assert r.status_code == 400
    assert r.json()["detail"]["msg"] == "num_inference_steps must be at most 200 (T2I_MAX_STEPS) but is 201."
    r = generate(lightning2, prompt="a cat", num_inference_steps=10**9, seed=1)  # ignored: 2 steps run
    assert r.status_code == 200 and lightning2.host.runner.last_call["steps_run"] == 2


def test_safety_checker_absent_is_reported_and_nsfw_false(model_dir_without_safety):
    with serve(GENERIC, model_dir_without_safety, env={"T2I_IMAGE_FORMAT": "jpeg"}) as srv:
        facts = info(srv)
        assert facts["status"] == "IDLE", facts["error"]
        assert "safety checker weights absent" in facts["runner"]["safety_checker"]
        assert any("safety checker weights absent" in n for n in facts["notes"])
        r = generate(srv, prompt="a cat", num_inference_steps=2, seed=1)
        image = r.json()["images"][0]
        assert image["nsfw"] is False
        assert image["url"].startswith("data:image/jpeg;base64,")  # the JPEG option


@pytest.mark.parametrize("value", ["not-a-device", "cuda:7"])
def test_unusable_safety_checker_device_falls_back_to_the_runner_device(model_dir, value):
    with serve(GENERIC, model_dir, env={"SAFETY_CHECKER_DEVICE": value}) as srv:
        facts = info(srv)
        assert facts["status"] == "IDLE", facts["error"]
        assert facts["runner"]["safety_checker"] == "loaded"
        assert any(f"SAFETY_CHECKER_DEVICE={value!r} is not a usable device" in n for n in facts["notes"])
        assert generate(srv, prompt="a cat", num_inference_steps=2, seed=1).status_code == 200


def test_fp16_variant_choice(tmp_path):
    generic, lightning = classify(GENERIC), classify(LIGHTNING)
    both, fp16_only, fp32_only = tmp_path / "both", tmp_path / "fp16", tmp_path / "fp32"
    for folder, names in ((both, ["model.safetensors", "model.fp16.safetensors"]),
                          (fp16_only, ["model.fp16.safetensors"]), (fp32_only, ["model.safetensors"])):
        (folder / "unet").mkdir(parents=True)
        for name in names:
            (folder / "unet" / name).write_bytes(b"")
    plan = lambda kind, folder, device, bf16=False: tuple(vars(load_plan(kind, folder, device, bf16)).values())  # noqa: E731
    assert plan(generic, both, "cuda:0") == ("float16", "fp16")
    assert plan(generic, both, "cuda:0", True) == ("bfloat16", "fp16")  # BFLOAT16 keeps the variant
    assert plan(generic, fp32_only, "cuda:0") == ("float32", None)
    assert plan(generic, both, "cpu") == ("float32", None)
    assert plan(generic, fp16_only, "cpu") == ("float32", "fp16")
    assert plan(lightning, tmp_path / "absent", "cuda:0") == ("float16", "fp16")  # Lightning: always fp16


def test_id_classification_and_download_plan():
    assert classify(LIGHTNING).steps == 8 and classify(f"{LIGHTNING}-2step").steps == 2
    with pytest.raises(UnsupportedModel, match="1-step"):
        classify(f"{LIGHTNING}-1step")
    assert classify(REALVIS).deepcache_allowed is False and classify(REALVIS).forced_guidance is None
    assert classify("stabilityai/sdxl-turbo").turbo and not classify("someone/sdxl-turbo-copy").turbo
    assert classify("someone/sdxl-turbo-copy").deepcache_allowed is False  # the regex still excludes it
    repos = dict(download_plan(f"{LIGHTNING}-4step"))
    assert repos["ByteDance/SDXL-Lightning"] == ["sdxl_lightning_4step_unet.safetensors"]
    assert "CompVis/stable-diffusion-safety-checker" in repos


def test_full_scale_synth_matches_real_sdxl_parameter_counts():
    from runners.text_to_image.synth import PARAMETER_COUNTS_FULL, empty_models

    models = empty_models("full")  # meta device: nothing allocated
    for name, expected in PARAMETER_COUNTS_FULL.items():
        count = sum(p.numel() for p in models[name].parameters())
        assert abs(count - expected) / expected < 0.01, (name, count, expected)
        assert all(p.is_meta for p in models[name].parameters())


def test_tiny_synth_is_under_10_mb(model_dir):
    def size(repo: str) -> int:
        folder = model_dir / ("models--" + repo.replace("/", "--")) / "blobs"
        return sum(p.stat().st_size for p in folder.iterdir())

    lightning_total = size("stabilityai/stable-diffusion-xl-base-1.0") + size("ByteDance/SDXL-Lightning")
    assert lightning_total < 10 * 1024**2
    for repo in (REALVIS, TURBO, GENERIC):
        assert size(repo) < 10 * 1024**2
