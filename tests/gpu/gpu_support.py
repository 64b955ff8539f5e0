"""What the GPU correctness tests share: the check's scale, device and deadline (from benchmarks/gpu/check.sh's
environment), the synthetic weights the benchmark sections also use, a real server per runner, and a watch
that every top-level model call's floating outputs are finite."""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

SCALE = os.environ.get("GPU_CHECK_SCALE", "")  # "" outside the GPU check: tests/gpu is deselected
DEVICE = os.environ.get("GPU_CHECK_DEVICE", "cpu")
DEADLINE = float(os.environ.get("GPU_CHECK_DEADLINE") or 0)  # time.time() by which the tests must end
SYNTH_DIR = Path(os.environ.get("GPU_CHECK_SYNTH_DIR") or f"/tmp/gpu-check-models/{SCALE or 'tiny'}")
PIPELINES = [p for p in os.environ.get("GPU_CHECK_PIPELINES", "").split(",") if p]
CUDA = DEVICE.startswith("cuda")
# The dtype each runner serves in on CUDA by default (its production dtype); float32 on the CPU.
PRODUCTION_DTYPE = {"text-to-image": "float16", "image-to-image": "float16", "image-to-video": "float16",
                    "upscale": "float16", "audio-to-text": "float16", "llm": "bfloat16", "image-to-text": "float16",
                    "segment-anything-2": "float32", "text-to-speech": "float32"}


def weights(pipeline: str, model_id: str | None = None) -> tuple[str, Path]:
    """(model id, MODEL_DIR) of `pipeline`'s model at the check's scale, synthesised (on the GPU when there is
    one) unless an earlier section already did."""
    from runner_sdk.bench.run import prepare_weights
    from runner_sdk.pipelines import PIPELINES as TABLE

    model_id = model_id or TABLE[pipeline].demo_model_id
    folder, _ = prepare_weights(pipeline, model_id, Path(os.environ.get("MODEL_DIR", "/models")), SYNTH_DIR, SCALE)
    return model_id, folder


@contextmanager
def served(pipeline: str, env: dict[str, str] | None = None, model_id: str | None = None,
           model_dir: Path | None = None, **settings) -> Iterator:
    """A real server (uvicorn on 127.0.0.1, in this process) of `pipeline`'s reference runner on the check's
    device; `env` holds runner options, set only while it starts. Its memory is released afterwards."""
    from runner_sdk.bench.run import SYNTHETIC_ENV
    from runner_sdk.pipelines import PIPELINES as TABLE
    from runner_sdk.pipelines import load_object
    from runner_sdk.settings import RunnerSettings
    from runner_sdk.testing import RunningServer

    model_id, folder = weights(pipeline, model_id) if model_dir is None else (model_id, model_dir)
    runner_cls = load_object(TABLE[pipeline].runner)
    options = {**SYNTHETIC_ENV.get(pipeline, {}), **(env or {})}
    settings = {"pipeline": pipeline, "model_id": model_id, "model_dir": folder, "device": DEVICE, "auth_token": "",
                "warmup": CUDA, **settings}  # tiny CPU runs skip the warm-up, as `runner-sdk bench --scale tiny`
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        for key, value in options.items():
            mp.setenv(key, value)
        server = RunningServer(runner_cls, RunnerSettings(**settings), ready_timeout=900)
        srv = server.__enter__()
    try:
        yield srv
    finally:
        server.__exit__(None, None, None)
        del server, srv
        release()


def release() -> None:
    """Free what a finished server held, so the next test's figures are its own."""
    gc.collect()
    if CUDA:
        import torch

        torch.cuda.empty_cache()


def send(srv, pipeline: str, i: int = 0, timeout: float = 600, **extra) -> httpx.Response:
    """The benchmark's request `i` for `pipeline` at the check's scale (runner_sdk.bench.workloads)."""
    from runner_sdk.bench.workloads import workload

    work = workload(pipeline, SCALE)
    kwargs = work.request(i)
    if extra and "json" in kwargs:
        kwargs["json"] = {**kwargs["json"], **extra}
    elif extra:
        kwargs["data"] = {**kwargs.get("data", {}), **{k: str(v) for k, v in extra.items()}}
    return httpx.post(srv.url + work.path, timeout=timeout, **kwargs)


def info(srv) -> dict:
    return httpx.get(srv.url + "/runner/info", timeout=30).json()


class FiniteWatch:
    """A global forward hook: every top-level module call (a UNet step, a VAE decode, an LLM forward, a
    Whisper forward...) has its floating-point outputs checked for NaN/inf; nested calls are not checked."""

    def __init__(self) -> None:
        self.depth = threading.local()
        self.checked: list[str] = []
        self.bad: list[str] = []

    def pre(self, module, args) -> None:
        self.depth.n = getattr(self.depth, "n", 0) + 1

    def post(self, module, args, output) -> None:
        self.depth.n = getattr(self.depth, "n", 1) - 1
        if self.depth.n == 0:
            import torch

            name = type(module).__name__
            self.checked.append(name)
            for t in _tensors(output):
                if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    self.bad.append(f"{name}: {t.dtype} {tuple(t.shape)} has NaN/inf")
                    break


def _tensors(value, depth: int = 0):
    import torch

    if isinstance(value, torch.Tensor):
        yield value
    elif depth < 3 and isinstance(value, (tuple, list)):
        for v in value:
            yield from _tensors(v, depth + 1)
    elif depth < 3 and isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v, depth + 1)
    elif depth < 3 and hasattr(value, "to_tuple"):  # transformers/diffusers ModelOutput
        yield from _tensors(value.to_tuple(), depth + 1)


@contextmanager
def finite_outputs() -> Iterator[FiniteWatch]:
    """Watch top-level model outputs for the `with` block (see FiniteWatch)."""
    from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

    watch = FiniteWatch()
    handles = [register_module_forward_pre_hook(watch.pre),
               register_module_forward_hook(watch.post, always_call=True)]
    try:
        yield watch
    finally:
        for h in handles:
            h.remove()


def time_left() -> float:
    """Seconds before the check's deadline."""
    return DEADLINE - time.time() if DEADLINE else float("inf")
