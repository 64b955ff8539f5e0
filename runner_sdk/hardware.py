"""Host facts for naming the machine in results. GPU facts come from `nvml.py`."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_name() -> str:
    """The host CPU's model name (for naming the machine in benchmark results)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
