"""Where torch.compile (Inductor) keeps its on-disk caches, so a second cold start does not compile again.

The operator's TORCHINDUCTOR_CACHE_DIR wins. Otherwise the caches go under MODEL_DIR/.compile-cache/inductor,
beside the weights, so they persist with the model volume. A read-only MODEL_DIR (a `:ro` mount, a baked image)
must not turn an optimisation flag into a failed load: the caches then go to the user's cache folder, which
lasts only as long as the container, and the returned note says so.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


def compile_cache_dir(model_dir: Path) -> tuple[Path, str | None]:
    """Point Inductor's caches at a persistent place; returns (folder, a note when it is not persistent)."""
    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    # torch itself writes its default (a temp folder) into the env once it has computed it: that is not
    # the operator's choice.
    if current and current != _torch_default_cache_dir():
        return Path(current), None
    path, note = Path(model_dir) / ".compile-cache" / "inductor", None
    if not _writable(path):
        fallback = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "runner-sdk" / "inductor"
        if not _writable(fallback):
            fallback = Path(tempfile.gettempdir()) / "runner-sdk-inductor"
            fallback.mkdir(parents=True, exist_ok=True)
        note = (f"MODEL_DIR is not writable: compile cache in {fallback}, which does not outlive the container "
                "(set TORCHINDUCTOR_CACHE_DIR to a writable volume to keep compiled kernels across restarts)")
        log.warning(note)
        path = fallback
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(path)
    os.environ.setdefault("TORCHINDUCTOR_FX_GRAPH_CACHE", "1")
    os.environ.setdefault("TORCHINDUCTOR_AUTOGRAD_CACHE", "1")
    return path, note


def _writable(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def _torch_default_cache_dir() -> str | None:
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    except ImportError:
        return None
    return default_cache_dir()
