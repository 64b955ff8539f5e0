"""Faults injected inside inference, at the boundary between a runner and its model: global torch module
hooks that act only on inference threads (the SDK's job threads, or a runner's own engine thread), never
while the model loads and warms up (the `load` thread) or on the main thread, so any runner is covered
without knowing its internals."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

NOT_INFERENCE = {"MainThread", "load"}


def in_job_thread() -> bool:
    return threading.current_thread().name not in NOT_INFERENCE


class OomOnce:
    """Arm it, and the next module forward in a job thread raises torch.OutOfMemoryError (once)."""

    def __init__(self) -> None:
        self.armed = False
        self.fired = 0

    def arm(self) -> None:
        self.armed = True

    def hook(self, module, args) -> None:
        if self.armed and in_job_thread():
            import torch

            self.armed = False
            self.fired += 1
            raise torch.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate 20.00 GiB (injected in {type(module).__name__}.forward)")


@contextmanager
def module_pre_hook(hook) -> Iterator[None]:
    """`hook(module, args)` before every module forward in the process, for the `with` block."""
    from torch.nn.modules.module import register_module_forward_pre_hook

    handle = register_module_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def oom_injector() -> Iterator[OomOnce]:
    oom = OomOnce()
    with module_pre_hook(oom.hook):
        yield oom


class _Depth(threading.local):
    n = 0


@contextmanager
def forward_delay(seconds: float) -> Iterator[None]:
    """Every top-level module call in a job thread (a denoising step, a decoder pass, a token) sleeps
    `seconds` first: a slow model, so a request is still running when the test acts on it."""
    from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

    depth = _Depth()

    def pre(module, args) -> None:
        if not in_job_thread():
            return
        if depth.n == 0:
            time.sleep(seconds)
        depth.n += 1

    def post(module, args, output) -> None:
        if in_job_thread():
            depth.n = max(0, depth.n - 1)

    handles = [register_module_forward_pre_hook(pre), register_module_forward_hook(post, always_call=True)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def slow_tokenizer_settings(seconds: float) -> Iterator[None]:
    """Hugging Face fast tokenizers store truncation/padding settings on the shared Rust tokenizer, then encode
    (`set_truncation_and_padding`, then `encode_batch`). Sleeping between the two widens that window, so two
    requests that tokenize on one tokenizer at once show whether a runner shares it across threads."""
    from transformers import PreTrainedTokenizerFast

    original = PreTrainedTokenizerFast.set_truncation_and_padding

    def slow(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if in_job_thread():
            time.sleep(seconds)
        return result

    PreTrainedTokenizerFast.set_truncation_and_padding = slow
    try:
        yield
    finally:
        PreTrainedTokenizerFast.set_truncation_and_padding = original
