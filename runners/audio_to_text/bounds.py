"""Timestamps the runner returns lie inside the audio (issue 14).

Whisper's timestamp tokens and its word-level DTW can land outside the audio: a window padded to 30 s, a
token timestamp before the first frame (-0.02 s for a one-sample WAV), the overlap of two windows merged
with a stray word out of order. Whatever the decoder produced, the answer holds: every timestamp lies in
[0, duration], starts never go back in time from one chunk to the next, and each end is at or after its
start (or null, where the decoder had no end for the last chunk, as upstream's pipeline answers).
"""

from __future__ import annotations

from typing import Any


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(float(value), low), high)


def bound_chunks(chunks: list[dict[str, Any]], duration_s: float) -> list[dict[str, Any]]:
    """Chunks with their timestamps made to fit the audio, text untouched.

    Args:
        chunks: {"timestamp": (start, end), "text": ...} as the decoder merged them; start or end may be None.
        duration_s: the decoded audio's length in seconds.
    Returns:
        New chunk dicts: start in [0, duration] and at least the previous chunk's start; end in [start,
        duration], or None where it was None. A None start becomes the previous chunk's start (0 first).
    """
    duration = max(0.0, float(duration_s))
    out = []
    floor = 0.0
    for chunk in chunks:
        start, end = (list(chunk["timestamp"]) + [None, None])[:2]
        start = floor if start is None else _clamp(start, floor, duration)
        if end is not None:
            end = _clamp(end, start, duration)
        floor = start
        out.append({**chunk, "timestamp": (start, end)})
    return out


def timestamp_problems(chunks: list[dict[str, Any]] | list[Any], duration_s: float) -> list[str]:
    """What breaks the bounds above (for tests and benchmarks; empty when the chunks are fine).

    Args:
        chunks: dicts with "timestamp", or `schemas.Chunk` objects.
        duration_s: the audio's length in seconds.
    """
    problems = []
    last = 0.0
    for i, chunk in enumerate(chunks):
        ts = chunk["timestamp"] if isinstance(chunk, dict) else chunk.timestamp
        start, end = ts[0], ts[1]
        if start is None or not 0 <= start <= duration_s + 1e-3:
            problems.append(f"chunk {i}: start {start} outside [0, {duration_s}]")
        elif start < last:
            problems.append(f"chunk {i}: start {start} before the previous start {last}")
        if end is not None and not (start or 0) <= end <= duration_s + 1e-3:
            problems.append(f"chunk {i}: end {end} outside [{start}, {duration_s}]")
        last = start if start is not None else last
    return problems
