"""The GPU correctness tests run only inside benchmarks/gpu/check.sh (GPU_CHECK_SCALE set: full scale on the GPU
host, tiny on the CPU in the rehearsal that CI runs); the plain test suite deselects them (deselected, not
skipped: they run in `make gpu-rehearse`). Inside the check, a test whose pipeline is not in this command's
part is deselected too, and a test that would pass the check's deadline is skipped with the reason, so the
check's report lists it.

    @pytest.mark.gpu(cost={"full": 40, "tiny": 5})   # expected seconds, weights' synthesis excluded
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
        items[:] = keep


@pytest.fixture(autouse=True)
def _within_deadline(request):
    marker = request.node.get_closest_marker("gpu")
    if marker is None:
        return
    cost = (marker.kwargs.get("cost") or {}).get(SCALE, 0)
    if cost > time_left():
        pytest.skip(f"time budget: needs ~{cost:.0f} s, {max(0.0, time_left()):.0f} s left")
