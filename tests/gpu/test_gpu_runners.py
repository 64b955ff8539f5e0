"""GPU correctness (benchmarks/gpu/check.sh; tiny scale on the CPU in the rehearsal): every served runner loads
its synthetic weights (full scale on the GPU) on the check's device in its production dtype and serves the
benchmark's request through the real server; every top-level model output is finite; the VRAM figures come
from NVML and torch and are plausible (and absent, not zero, on the CPU); an out-of-memory error inside
inference answers the contract's 500 and the runner serves the next request."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from gpu.gpu_support import CUDA, DEVICE, PRODUCTION_DTYPE, finite_outputs, info, send, served

ALL = ["text-to-image", "llm", "audio-to-text", "image-to-image", "image-to-video", "upscale", "image-to-text",
       "segment-anything-2", "text-to-speech"]
OOM_CHECKED = {"text-to-image", "llm", "audio-to-text"}  # one of each kind of loop: denoising, decoding, Whisper


def data_urls(value) -> list[str]:
    """Every data URL in a response body."""
    if isinstance(value, str):
        return [value] if value.startswith("data:") else []
    if isinstance(value, dict):
        return [u for v in value.values() for u in data_urls(v)]
    if isinstance(value, list):
        return [u for v in value for u in data_urls(v)]
    return []


def check_answer(pipeline: str, body: dict) -> None:
    """The answer is worth pricing units and its media decode."""
    from PIL import Image

    from runner_sdk.bench.workloads import workload

    assert workload(pipeline, "tiny").units(body) > 0
    for url in data_urls(body):
        head, _, payload = url.partition(",")
        raw = base64.b64decode(payload)
        assert raw, head
        if head.startswith("data:image/"):
            with Image.open(io.BytesIO(raw)) as image:
                assert image.width > 0 and image.height > 0


def check_vram(srv, facts: dict) -> None:
    """NVML's and torch's figures on CUDA (positive, under the card's memory); none at all on the CPU."""
    warm, peak = facts["vram"]["warm"], facts["vram"]["peak"]
    stats = httpx.get(srv.url + "/hardware/stats", timeout=30).json()["gpu_stats"]
    if not CUDA:
        assert not stats
        assert all(v is None for v in (warm or {}).values()) and all(v is None for v in (peak or {}).values())
        return
    import torch

    total = torch.cuda.get_device_properties(torch.device(DEVICE)).total_memory
    assert stats, "NVML reported no GPU in /hardware/stats"
    gpu = next(iter(stats.values()))
    assert 0 < gpu["memory_total"] <= 2 * total and 0 <= gpu["memory_free"] <= gpu["memory_total"]
    assert 0 < warm["torch_allocated"] <= warm["torch_reserved"] < total
    assert warm["nvml_used_delta"] is not None and 0 < warm["nvml_used_delta"] < total, warm
    assert peak["torch_allocated"] >= warm["torch_allocated"] * 0.5 and peak["torch_reserved"] < total, peak


def check_oom_recovers(srv, pipeline: str) -> None:
    """A real allocator OOM on CUDA (the first model forward asks for twice the card), the injected error on
    the CPU; then /health is IDLE and the next request succeeds."""
    import torch
    from torch.nn.modules.module import register_module_forward_pre_hook

    fired = []

    def hook(module, args):
        if not fired:
            fired.append(type(module).__name__)
            if CUDA:
                torch.empty(2 * torch.cuda.get_device_properties(torch.device(DEVICE)).total_memory,
                            dtype=torch.uint8, device=DEVICE)
            raise torch.OutOfMemoryError(f"injected in {fired[0]}.forward")

    before = torch.cuda.memory_allocated(DEVICE) if CUDA else 0
    handle = register_module_forward_pre_hook(hook)
    try:
        r = send(srv, pipeline, 1)
    finally:
        handle.remove()
    assert fired, "no module forward ran"
    # Either the contract's 500, or recovered inside the request (Whisper halves its batch and retries).
    assert r.status_code == 200 or (r.status_code == 500 and r.json()["detail"]["msg"] ==
                                    type(srv.host.runner).oom_message), r.text[:300]
    assert httpx.get(srv.url + "/health", timeout=30).json()["status"] == "IDLE"
    r = send(srv, pipeline, 2)
    assert r.status_code == 200, r.text[:500]
    if CUDA:  # nothing of the failed request stays allocated (slack for caches a runner keeps between requests)
        assert torch.cuda.memory_allocated(DEVICE) <= before + 2 * 2**30


@pytest.mark.gpu(cost={"full": 45, "tiny": 8})
@pytest.mark.parametrize("pipeline", ALL)
def test_serves_one_request_with_finite_outputs(pipeline):
    with served(pipeline) as srv:
        facts = info(srv)
        assert facts["device"].startswith(DEVICE.split(":")[0]), facts["device"]
        assert facts["dtype"] == (PRODUCTION_DTYPE[pipeline] if CUDA else "float32"), facts["dtype"]
        with finite_outputs() as watch:
            r = send(srv, pipeline)
        assert r.status_code == 200, r.text[:500]
        assert watch.checked, "no model call was watched"
        assert not watch.bad, watch.bad
        check_answer(pipeline, r.json())
        check_vram(srv, info(srv))
        if pipeline in OOM_CHECKED:
            check_oom_recovers(srv, pipeline)
