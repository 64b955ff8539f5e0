"""One lazily initialised NVML session (nvidia-ml-py) for everything that asks the driver about GPUs:
/hardware/info and /hardware/stats (contract 3.3), the VRAM figures in measure.py, `aimodels plan` and
`bench`.

`nvmlInit` runs once per process, on first use, not per request. If NVML is missing (a CPU host) the
failure is remembered too, so a CPU runner pays for it once. Keys are NVML indexes as strings, the order of
nvidia-smi and of `docker run --gpus device=N`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from .schemas import GPUComputeInfo, GPUUtilizationInfo

log = logging.getLogger(__name__)

_lock = threading.Lock()
# The pynvml module object that was initialised (or failed to): a test that swaps the module gets a new session.
_session: tuple[Any, BaseException | None] | None = None


class NvmlUnavailable(RuntimeError):
    """NVML could not be loaded or initialised (no driver, no GPU, no nvidia-ml-py)."""


def session() -> Any:
    """The initialised `pynvml` module.

    Raises:
        NvmlUnavailable: NVML is missing or failed to initialise (remembered: later calls fail fast).
    """
    global _session
    try:
        import pynvml
    except ImportError as exc:
        raise NvmlUnavailable(f"nvidia-ml-py is not installed: {exc}") from exc
    current = _session
    if current is None or current[0] is not pynvml:
        with _lock:
            current = _session
            if current is None or current[0] is not pynvml:
                try:
                    pynvml.nvmlInit()
                    current = (pynvml, None)
                except Exception as exc:  # noqa: BLE001 - any NVML failure means "no GPU facts"
                    current = (pynvml, exc)
                _session = current
    if current[1] is not None:
        raise NvmlUnavailable(str(current[1]))
    return pynvml


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def cuda_index(device: str) -> int | None:
    """"cuda:N" -> N, "cuda" -> 0, anything else (cpu) -> None."""
    if not device.startswith("cuda"):
        return None
    return int(device.split(":", 1)[1]) if ":" in device else 0


def handle_for(device: str) -> Any:
    """The NVML handle of a torch device ("cuda:N"), mapped through the GPU's UUID: CUDA_VISIBLE_DEVICES may
    renumber devices, so torch's N need not be NVML's N.

    Raises:
        NvmlUnavailable: no NVML. ValueError: `device` is not a CUDA device.
    """
    index = cuda_index(device)
    if index is None:
        raise ValueError(f"{device!r} is not a CUDA device")
    nv = session()
    import torch

    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    return nv.nvmlDeviceGetHandleByUUID(f"GPU-{uuid}") if uuid is not None else nv.nvmlDeviceGetHandleByIndex(index)


def used_bytes(device: str) -> int | None:
    """Device memory in use by all processes, in bytes, as NVML sees it; None on the CPU or without NVML."""
    if cuda_index(device) is None:
        return None
    try:
        return int(session().nvmlDeviceGetMemoryInfo(handle_for(device)).used)
    except Exception as exc:  # noqa: BLE001
        log.debug("NVML used memory unavailable: %s", exc)
        return None


@dataclass(frozen=True)
class Gpu:
    """A GPU as NVML numbers it."""

    index: int
    name: str
    memory_total: int  # bytes


def gpus() -> list[Gpu]:
    """Every GPU NVML sees, in NVML order. Raises NvmlUnavailable without NVML."""
    nv = session()
    out = []
    for i in range(nv.nvmlDeviceGetCount()):
        h = nv.nvmlDeviceGetHandleByIndex(i)
        out.append(Gpu(i, _text(nv.nvmlDeviceGetName(h)), int(nv.nvmlDeviceGetMemoryInfo(h).total)))
    return out


def _each_gpu(row) -> dict[str, Any]:
    """{NVML index as a string: row(nvml, handle, memory info)} for every GPU; {} when NVML is unavailable
    (the /hardware routes still answer 200, contract 3.3)."""
    try:
        nv = session()
        out = {}
        for i in range(nv.nvmlDeviceGetCount()):
            h = nv.nvmlDeviceGetHandleByIndex(i)
            out[str(i)] = row(nv, h, nv.nvmlDeviceGetMemoryInfo(h))
        return out
    except Exception as exc:  # noqa: BLE001
        log.debug("NVML unavailable: %s", exc)
        return {}


def _compute_info(nv: Any, h: Any, mem: Any) -> GPUComputeInfo:
    major, minor = nv.nvmlDeviceGetCudaComputeCapability(h)
    return GPUComputeInfo(id=_text(nv.nvmlDeviceGetUUID(h)), name=_text(nv.nvmlDeviceGetName(h)),
                          memory_total=int(mem.total), memory_free=int(mem.free), major=int(major), minor=int(minor))


def _utilization(nv: Any, h: Any, mem: Any) -> GPUUtilizationInfo:
    util = nv.nvmlDeviceGetUtilizationRates(h)
    return GPUUtilizationInfo(id=_text(nv.nvmlDeviceGetUUID(h)), name=_text(nv.nvmlDeviceGetName(h)),
                              memory_total=int(mem.total), memory_free=int(mem.free),
                              utilization_compute=int(util.gpu), utilization_memory=int(util.memory))


def gpu_info() -> dict[str, GPUComputeInfo]:
    """/hardware/info's `gpu_info`: {} when NVML is unavailable."""
    return _each_gpu(_compute_info)


def gpu_stats() -> dict[str, GPUUtilizationInfo]:
    """/hardware/stats's `gpu_stats`: {} when NVML is unavailable."""
    return _each_gpu(_utilization)
