"""Device selection: `auto`, `cpu`, `cuda` or `cuda:N`, checked against what torch can see."""

from __future__ import annotations

import re


class DeviceError(ValueError):
    pass


def select_device(requested: str) -> str:
    import torch

    req = (requested or "auto").strip().lower()
    if req == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if req == "cpu":
        return "cpu"
    m = re.fullmatch(r"cuda(?::(\d+))?", req)
    if not m:
        raise DeviceError(f"unknown device {requested!r}: use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {requested!r} requested but CUDA is not available")
    index = int(m.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise DeviceError(f"device {requested!r} requested but only {torch.cuda.device_count()} CUDA device(s)")
    torch.cuda.set_device(index)
    return f"cuda:{index}"
