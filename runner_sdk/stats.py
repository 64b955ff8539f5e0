"""Percentiles, one way everywhere (bench, benchmarks, soak): `statistics.quantiles` with the inclusive
method, i.e. linear interpolation between the closest ranks (numpy's default), so p50 is the median."""

from __future__ import annotations

import statistics
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0 <= q <= 100) of `values`, interpolated; a single value is its own percentile.

    Raises:
        ValueError: no values, or q outside [0, 100].
    """
    data = sorted(values)
    if not data:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside [0, 100]")
    if len(data) == 1 or q == 0:
        return data[0]
    if q == 100:
        return data[-1]
    # quantiles(n=1000) gives the 999 cut points at 0.1 % steps: index k is the (k+1)/10-th percentile.
    cuts = statistics.quantiles(data, n=1000, method="inclusive")
    return cuts[round(q * 10) - 1]


def summary(values: Iterable[float]) -> dict[str, float]:
    """{"p50", "p95", "p99"} of `values` (seconds or whatever unit they carry)."""
    data = list(values)
    return {f"p{q}": percentile(data, q) for q in (50, 95, 99)}
