"""Output integrity: no garbage behind a 200.

Inputs: `numeric_error` checks a validated request's numbers (finite floats, ints that fit Go's int64, the
ranges each wire model declares in `ranges`); the SDK answers a 400 naming the field and its range
(`parsing.parse_body`). A 400, not a 422: go-livepeer reads `{"detail":{"msg":...}}` for a caller's value
error, and 422 stays FastAPI's schema-error list.

Outputs: a runner checks its tensors before encoding them (latents, pixels, audio samples, logits, mask
scores) with `check_finite`. Where it can recover (decode again in higher precision) it does and counts it
with `OutputIntegrity.recovered`; otherwise `NonFiniteOutput` is a JSON 500 with a clear message, never a
200. The counts are served on /metrics as `runner_output_nonfinite_total{stage, outcome}`:

    class MyRunner(Runner[...]):
        def predict(self, inputs, job):
            out = self.model(...)
            if not is_finite(out) and self.half:
                out = self.model_fp32(...)
                self.integrity.recovered("pixels", "decoded again in float32")
            self.integrity.check(out, "pixels")   # NonFiniteOutput (500) when still not finite
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Any

from prometheus_client.core import CounterMetricFamily
from pydantic import BaseModel

from .errors import RunnerError
from .schemas import INT64, Bounds

log = logging.getLogger("runner_sdk")

METRIC = "runner_output_nonfinite"


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _bounds_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"between {_num(low)} and {_num(high)}"
    return f"at least {_num(low)}" if low is not None else f"at most {_num(high)}"  # type: ignore[arg-type]


def numeric_error(body: BaseModel) -> str | None:
    """Why a validated request's numbers are unacceptable, or None when they are fine.

    Every float field must be finite (NaN and Infinity reach a model through form text parts like "nan", or
    through a JSON number too large for a double), every int must fit Go's int64, and fields listed in the
    model's `ranges` (runner_sdk.schemas) must lie in their range.

    Args:
        body: a validated request model (a `WireModel`, or any pydantic model: unranged then).
    Returns:
        A message naming the field, its allowed range and the value, or None.
    """
    ranges: dict[str, Bounds] = getattr(type(body), "ranges", {})
    for name in type(body).model_fields:
        value = getattr(body, name, None)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        low, high = ranges.get(name, (None, None))
        if isinstance(value, float) and not math.isfinite(value):
            allowed = _bounds_text(low, high) if name in ranges else "a finite number"
            return f"{name} must be {allowed}, got {value}"
        if isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
            low = INT64[0] if low is None else max(low, INT64[0])
            high = INT64[1] if high is None else min(high, INT64[1])
        if (low is not None and value < low) or (high is not None and value > high):
            return f"{name} must be {_bounds_text(low, high)}, got {value}"
    return None


class NonFiniteOutput(RunnerError):
    """The model produced NaN or Infinity in `stage` and the runner could not recover: a JSON 500.

    Args:
        stage: what was checked ("latents", "pixels", "logits", "audio", "mask scores"...).
        hint: what the caller might change, appended to the message.
    """

    def __init__(self, stage: str, hint: str = ""):
        msg = f"The model produced non-finite values (NaN or Infinity) in its {stage}; no result was returned."
        super().__init__(500, f"{msg} {hint}".strip())
        self.stage = stage


def is_finite(value: Any) -> bool:
    """True when every element of a torch tensor, numpy array or float is finite (empty: True).

    Args:
        value: a torch.Tensor, numpy.ndarray, float, or a list/tuple of those.
    """
    if isinstance(value, (list, tuple)):
        return all(is_finite(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    if type(value).__module__.startswith("torch"):
        import torch

        if not (value.is_floating_point() or value.is_complex()):
            return True
        return bool(torch.isfinite(value).all())
    import numpy as np

    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.complexfloating):
        return True
    return bool(np.isfinite(arr).all())


class OutputIntegrity:
    """A runner's output checks and their counts (thread-safe), for the log and /metrics.

    Attributes:
        counts: (stage, outcome) -> times; outcome is "recovered" or "failed".
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[tuple[str, str], int] = {}

    def _add(self, stage: str, outcome: str) -> None:
        with self._lock:
            self.counts[(stage, outcome)] = self.counts.get((stage, outcome), 0) + 1

    def recovered(self, stage: str, how: str) -> None:
        """Count and log a non-finite output that the runner repaired (e.g. decoded again in float32)."""
        self._add(stage, "recovered")
        log.warning("non-finite values in the %s: %s", stage, how)

    def check(self, value: Any, stage: str, hint: str = "") -> None:
        """Raise unless `value` is all finite; the failure is counted and logged.

        Args:
            value: the tensor (or array, float, list of those) about to be encoded.
            stage: its name in the message and the metric. hint: appended to the 500's message.
        Raises:
            NonFiniteOutput: 500 with a message naming `stage`.
        """
        if not is_finite(value):
            self.failed(stage)
            raise NonFiniteOutput(stage, hint)

    def failed(self, stage: str) -> None:
        """Count and log a non-finite output answered as an error."""
        self._add(stage, "failed")
        log.error("non-finite values in the %s: answering 500", stage)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """{stage: {outcome: count}} for /runner/info."""
        with self._lock:
            out: dict[str, dict[str, int]] = {}
            for (stage, outcome), n in self.counts.items():
                out.setdefault(stage, {})[outcome] = n
            return out


def integrity_of(runner: Any) -> OutputIntegrity:
    """The runner's OutputIntegrity, created on first use (a runner needs no constructor change)."""
    found = getattr(runner, "_output_integrity", None)
    if found is None:
        found = OutputIntegrity()
        runner._output_integrity = found
    return found


class IntegrityCollector:
    """Prometheus collector: the serving runner's `runner_output_nonfinite_total{stage, outcome}`."""

    def __init__(self, get_runner: Callable[[], Any]):
        self.get_runner = get_runner

    def collect(self):
        """Yields the counter family (prometheus_client calls this on every scrape)."""
        family = CounterMetricFamily(METRIC, "Non-finite model outputs by stage: recovered or answered 500",
                                     labels=["stage", "outcome"])
        runner = self.get_runner()
        found = getattr(runner, "_output_integrity", None) if runner is not None else None
        if found is not None:
            for (stage, outcome), n in sorted(found.counts.items()):
                family.add_metric([stage, outcome], n)
        yield family
