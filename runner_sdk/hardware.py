"""GPU facts through NVML (nvidia-ml-py), for /hardware/info and /hardware/stats (contract 3.3).

Keys are NVML indexes as strings; if NVML is missing or fails, the maps are empty (still a 200).
"""

from __future__ import annotations

import logging
import platform
from pathlib import Path

from .schemas import GPUComputeInfo, GPUUtilizationInfo

log = logging.getLogger(__name__)


def _nvml():
    import pynvml

    pynvml.nvmlInit()
    return pynvml


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def gpu_info() -> dict[str, GPUComputeInfo]:
    try:
        nv = _nvml()
        out = {}
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            mem = nv.nvmlDeviceGetMemoryInfo(h)
            major, minor = nv.nvmlDeviceGetCudaComputeCapability(h)
            out[str(i)] = GPUComputeInfo(
                id=_text(nv.nvmlDeviceGetUUID(h)), name=_text(nv.nvmlDeviceGetName(h)),
                memory_total=int(mem.total), memory_free=int(mem.free), major=int(major), minor=int(minor))
        return out
    except Exception as exc:
        log.debug("NVML unavailable: %s", exc)
        return {}


def gpu_stats() -> dict[str, GPUUtilizationInfo]:
    try:
        nv = _nvml()
        out = {}
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            mem = nv.nvmlDeviceGetMemoryInfo(h)
            util = nv.nvmlDeviceGetUtilizationRates(h)
            out[str(i)] = GPUUtilizationInfo(
                id=_text(nv.nvmlDeviceGetUUID(h)), name=_text(nv.nvmlDeviceGetName(h)),
                memory_total=int(mem.total), memory_free=int(mem.free),
                utilization_compute=int(util.gpu), utilization_memory=int(util.memory))
        return out
    except Exception as exc:
        log.debug("NVML unavailable: %s", exc)
        return {}


def cpu_name() -> str:
    """The host CPU's model name (for naming the machine in benchmark results)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
