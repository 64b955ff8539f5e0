"""The batcher on its own: waiting requests share a call, keys keep incompatible ones apart, errors and
cancellation reach the right requests."""

from __future__ import annotations

import threading
import time

import pytest

from runner_sdk import Job, JobCancelled
from runners.image_to_text.batcher import Batcher


def _run_all(batcher, items, jobs=None):
    jobs = jobs or [Job() for _ in items]
    out: dict[int, object] = {}

    def one(i):
        try:
            out[i] = batcher.submit(items[i], jobs[i])
        except BaseException as exc:  # noqa: BLE001
            out[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(items))]
    for t in threads:
        t.start()
        time.sleep(0.01)
    for t in threads:
        t.join()
    return [out[i] for i in range(len(items))]


def test_waiting_items_share_a_call_by_key():
    calls = []

    def run(items, jobs):
        calls.append(list(items))
        time.sleep(0.2)
        return [x * 10 for x in items]

    b = Batcher(run, max_batch=3, key=lambda x: x % 2)
    assert _run_all(b, [1, 3, 5, 7, 2, 4]) == [10, 30, 50, 70, 20, 40]
    assert calls[0] == [1]  # the first runs alone; the rest waited
    assert all(len({x % 2 for x in c}) == 1 and len(c) <= 3 for c in calls)
    assert len(calls) < 6 and b.info()["largest_batch"] >= 2


def test_errors_and_cancellation():
    def run(items, jobs):
        time.sleep(0.1)
        if "boom" in items:
            raise ValueError("boom")
        return items

    b = Batcher(run, max_batch=4)
    cancelled = Job()
    cancelled.cancel()
    results = _run_all(b, ["a", "boom", "c"], [Job(), Job(), Job()])
    assert results[0] == "a" and isinstance(results[1], ValueError)
    with pytest.raises(JobCancelled):
        b.submit("x", cancelled)
