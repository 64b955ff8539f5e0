"""Measurement: cold-load time by phase, warm VRAM after load, peak VRAM per request.

On the CPU every VRAM figure is None (not 0): there is no device memory to report.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from .nvml import cuda_index as _cuda_index
from .nvml import used_bytes as nvml_used_bytes

LOAD_PHASES = ("init", "resolve", "read_weights", "to_device", "optimise", "warmup")


@dataclass
class PhaseTimer:
    """Wall seconds per named phase; phases may repeat (they add up)."""

    seconds: dict[str, float] = field(default_factory=dict)
    _started: float = field(default_factory=time.perf_counter)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def total(self) -> float:
        return time.perf_counter() - self._started


def vram_snapshot(device: str) -> dict[str, int | None] | None:
    """torch allocated/reserved and NVML used on `device` now; None on the CPU."""
    index = _cuda_index(device)
    if index is None:
        return None
    import torch

    return {
        "torch_allocated": int(torch.cuda.memory_allocated(index)),
        "torch_reserved": int(torch.cuda.memory_reserved(index)),
        "nvml_used": nvml_used_bytes(device),
    }


class PeakVram:
    """Peak device memory over one request. With capacity > 1 the peaks of overlapping requests mix:
    the figure is then the device's peak while this request ran, which is what an operator sizes for."""

    _lock = threading.Lock()

    def __init__(self, device: str, baseline_nvml: int | None):
        self.device = device
        self.index = _cuda_index(device)
        self.baseline_nvml = baseline_nvml
        self.result: dict[str, int | None] | None = None

    def __enter__(self) -> PeakVram:
        if self.index is not None:
            import torch

            with self._lock:
                torch.cuda.reset_peak_memory_stats(self.index)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.index is None:
            return
        import torch

        used = nvml_used_bytes(self.device)
        self.result = {
            "torch_allocated": int(torch.cuda.max_memory_allocated(self.index)),
            "torch_reserved": int(torch.cuda.max_memory_reserved(self.index)),
            "nvml_used_delta": (used - self.baseline_nvml) if used is not None and self.baseline_nvml is not None
            else None,
        }


def free_cuda_cache(device: str) -> None:
    if _cuda_index(device) is None:
        return
    import gc

    import torch

    gc.collect()
    torch.cuda.empty_cache()
