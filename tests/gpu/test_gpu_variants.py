"""GPU correctness of the variants (benchmarks/gpu/check.sh; tiny scale on the CPU in the rehearsal): the LLM
quantised to int4 (torchao, CUDA; the CPU notes and ignores it), the LLM on vLLM when vLLM is importable, and
text-to-image's SFAST (torch.compile, since stable-fast is not installed) and DEEPCACHE, each serving a request
with finite outputs. On the CPU only torch.compile itself is stood in for (compiling a UNet on two cores takes
minutes); on the GPU it compiles for real."""

from __future__ import annotations

import importlib.util

import pytest
from gpu.gpu_support import CUDA, SCALE, SYNTH_DIR, finite_outputs, info, send, served, weights

LLM_FULL_BF16_BYTES = 16.06e9  # Llama 3.1 8B's weights in bf16


@pytest.mark.gpu(cost={"full": 60, "tiny": 8}, pipeline="llm", rank=3)
def test_llm_int4_serves_in_a_fraction_of_the_memory():
    with served("llm", env={"QUANTIZE": "int4"}) as srv:
        facts = info(srv)
        with finite_outputs() as watch:
            r = send(srv, "llm")
        assert r.status_code == 200, r.text[:500]
        assert r.json()["usage"]["completion_tokens"] > 0
        assert not watch.bad, watch.bad
        if not CUDA:
            assert any(n.startswith("QUANTIZE=int4 ignored") for n in facts["notes"]), facts["notes"]
            return
        assert "int4" in facts["optimisations_applied"]["QUANTIZE"], facts["optimisations_applied"]
        if SCALE == "full":  # int4 weights: about a third of bf16's (embedding and lm_head stay bf16)
            assert facts["vram"]["warm"]["torch_allocated"] < 0.5 * LLM_FULL_BF16_BYTES, facts["vram"]


@pytest.mark.gpu(cost={"full": 120, "tiny": 30}, pipeline="llm", rank=50)
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed here")
def test_llm_on_vllm_when_present(tmp_path):
    """On the GPU host when vLLM was carried there; on the CPU in `make vllm-test` (the .venv-vllm environment,
    GPU_CHECK_SCALE=tiny), so the test runs in CI."""
    where = {}
    if not CUDA:  # vLLM's CPU attention has no kernel for the tiny model's head size (16): same tensors, 2 x 32
        from benchmarks.llm.gpu_bench import vllm_servable_tiny
        from runner_sdk.resolve import resolve_snapshot

        model_id, folder = weights("llm")
        servable = vllm_servable_tiny(resolve_snapshot(model_id, folder, download=False), tmp_path / "llm-vllm")
        where = {"model_id": str(servable), "model_dir": folder}
    with served("llm", env={"LLM_BACKEND": "vllm", "VLLM_CPU_KVCACHE_SPACE": "1"}, **where) as srv:
        r = send(srv, "llm")
        assert r.status_code == 200, r.text[:500]
        assert r.json()["usage"]["completion_tokens"] > 0


@pytest.mark.gpu(cost={"full": 60, "tiny": 10}, pipeline="text-to-image", rank=4)
def test_deepcache_on_a_generic_sdxl():
    from runner_sdk.resolve import resolve_snapshot

    model_id, folder = weights("text-to-image")  # Lightning: also writes the SDXL base it builds on
    base = resolve_snapshot("stabilityai/stable-diffusion-xl-base-1.0", folder)
    if SCALE == "full":  # the full base has no UNet of its own: the Lightning weights stand in (symlinks)
        from benchmarks.text_to_image.gpu_bench import generic_folder

        generic = str(generic_folder(folder, base))
    else:
        generic = str(base)
    steps = {"num_inference_steps": 25 if SCALE == "full" else 4, "guidance_scale": 5.0}
    with served("text-to-image", model_id=generic, model_dir=folder, deepcache=True) as srv:
        applied = info(srv)["optimisations_applied"]
        assert "DeepCache" in applied.get("DEEPCACHE", ""), applied
        with finite_outputs() as watch:
            r = send(srv, "text-to-image", **steps)
        assert r.status_code == 200, r.text[:500]
        assert not watch.bad, watch.bad


@pytest.mark.gpu(cost={"full": 240, "tiny": 10}, pipeline="text-to-image", rank=99)
def test_sfast_falls_back_to_torch_compile(monkeypatch):
    from runners.text_to_image import optimise

    compiled = []
    if not CUDA:
        monkeypatch.setattr(optimise, "torch_compile",
                            lambda module, mode, backend: compiled.append(type(module).__name__))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(SYNTH_DIR / "inductor-cache"))
    with served("text-to-image", sfast=True) as srv:
        applied = info(srv)["optimisations_applied"]
        if not optimise.stable_fast_available():
            assert applied["SFAST"].startswith("torch.compile (stable-fast not installed)"), applied
        # No forward hooks here: a global hook added after compilation would make dynamo guard or recompile.
        r = send(srv, "text-to-image")
        assert r.status_code == 200, r.text[:500]
        assert r.json()["images"] and not any(image.get("nsfw") is None for image in r.json()["images"])
    assert CUDA or compiled == ["UNet2DConditionModel", "Decoder"]
