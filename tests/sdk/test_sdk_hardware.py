"""/hardware/* with NVML present: the shape go-livepeer parses (string keys, string UUID, bytes, ints).

NVML is replaced at its module boundary by a stand-in with two GPUs; there is no GPU here.
"""

from __future__ import annotations

import sys
import types

import httpx
from fakes import runner

from runner_sdk.testing import RunningServer


def fake_pynvml() -> types.ModuleType:
    nv = types.ModuleType("pynvml")
    gpus = [("GPU-1111", b"NVIDIA H100 80GB HBM3", 85520809984, 80000000000, (9, 0), (37, 12)),
            ("GPU-2222", "NVIDIA GeForce RTX 4090", 25757220864, 20000000000, (8, 9), (0, 1))]
    nv.nvmlInit = lambda: None
    nv.nvmlDeviceGetCount = lambda: len(gpus)
    nv.nvmlDeviceGetHandleByIndex = lambda i: gpus[i]
    nv.nvmlDeviceGetUUID = lambda h: h[0]
    nv.nvmlDeviceGetName = lambda h: h[1]
    nv.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=h[2], free=h[3], used=h[2] - h[3])
    nv.nvmlDeviceGetCudaComputeCapability = lambda h: h[4]
    nv.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=h[5][0], memory=h[5][1])
    return nv


def test_hardware_routes_with_nvml(settings, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    with RunningServer(runner(), settings()) as srv:
        info = httpx.get(srv.url + "/hardware/info").json()
        assert list(info["gpu_info"]) == ["0", "1"]
        assert info["gpu_info"]["0"] == {"id": "GPU-1111", "name": "NVIDIA H100 80GB HBM3",
                                         "memory_total": 85520809984, "memory_free": 80000000000,
                                         "major": 9, "minor": 0}
        assert info["gpu_info"]["1"]["name"] == "NVIDIA GeForce RTX 4090"  # bytes or str from NVML
        stats = httpx.get(srv.url + "/hardware/stats").json()
        assert stats["gpu_stats"]["0"]["utilization_compute"] == 37
        assert stats["gpu_stats"]["1"]["utilization_memory"] == 1
        assert set(stats["gpu_stats"]["1"]) == {"id", "name", "memory_total", "memory_free",
                                                "utilization_compute", "utilization_memory"}


def test_hardware_routes_when_nvml_fails(settings, monkeypatch):
    broken = types.ModuleType("pynvml")

    def fail():
        raise RuntimeError("NVML Shared Library Not Found")

    broken.nvmlInit = fail
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    with RunningServer(runner(), settings()) as srv:
        r = httpx.get(srv.url + "/hardware/info")
        assert r.status_code == 200 and r.json()["gpu_info"] == {}
        assert httpx.get(srv.url + "/hardware/stats").json()["gpu_stats"] == {}
