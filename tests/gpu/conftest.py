"""The GPU correctness tests run only inside benchmarks/gpu/check.sh (GPU_CHECK_SCALE set: full scale on the GPU
host, tiny on the CPU in the rehearsal that CI runs); the plain test suite deselects them (deselected, not
skipped: they run in `make gpu-rehearse`). Inside the check, a test whose pipeline is not in this command's
part is deselected too, and a test that would pass the check's deadline is skipped with the reason, so the
check's report lists it.

    @pytest.mark.gpu(cost={"full": 40, "tiny": 5}, rank=3)   # expected seconds (weights' synthesis
                                                              # excluded); lower ranks run first

Order, most valuable first: the runners with targets in the issue (text-to-image, llm, audio-to-text), then
the LLM in int4 and DEEPCACHE, then the other runners, then SFAST's real compile (minutes on a GPU).
"""

from __future__ import annotations

import pytest
from gpu.gpu_support import PIPELINES, SCALE, time_left


def _pipeline(item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "pipeline" in callspec.params:
        return callspec.params["pipeline"]
    marker = item.get_closest_marker("gpu")
    return marker.kwargs.get("pipeline") if marker else None


FIRST = {"text-to-image": 0, "llm": 1, "audio-to-text": 2}  # a runner test's rank by its pipeline; others 10


def _rank(item) -> int:
    marker = item.get_closest_marker("gpu")
    if marker is None:
        return 0
    if "rank" in marker.kwargs:
        return marker.kwargs["rank"]
    return FIRST.get(_pipeline(item), 10)


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        if item.get_closest_marker("gpu") is None:
            keep.append(item)
        elif not SCALE or (_pipeline(item) and PIPELINES and _pipeline(item) not in PIPELINES):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = sorted(keep, key=_rank)  # stable: the files' order within a rank


@pytest.fixture(autouse=True)
def _within_deadline(request):
    marker = request.node.get_closest_marker("gpu")
    if marker is None:
        return
    cost = (marker.kwargs.get("cost") or {}).get(SCALE, 0)
    if cost > time_left():
        pytest.skip(f"time budget: needs ~{cost:.0f} s, {max(0.0, time_left()):.0f} s left")
