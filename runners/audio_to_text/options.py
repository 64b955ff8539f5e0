"""The text parts of an /audio-to-text request, validated as the contract says (3.6, 4.4, Q12, Q13)."""

from __future__ import annotations

import json
import math
from typing import Literal

from runner_sdk import BadRequest

Timestamps = Literal[False, True, "word"]

# Q13: upstream passes unknown values on to the model; we accept `segment` as `true` and reject the rest.
_TIMESTAMP_WORDS: dict[str, Timestamps] = {
    "true": True, "1": True, "sentence": True, "segment": True, "": True,
    "false": False, "0": False,
    "word": "word",
}

DURATION_MESSAGE = "Unable to calculate duration of file"  # no period (contract 4.4)
WORD_LIMIT_S = 3600.0


def parse_return_timestamps(value: str) -> Timestamps:
    """`true`/`1`/`sentence`/`segment` -> segments, `false`/`0` -> none, `word` -> words (case-insensitive)."""
    mode = _TIMESTAMP_WORDS.get(value.strip().lower())
    if mode is None:
        raise BadRequest(f"Invalid return_timestamps value {value!r}: use true, false, word, sentence, segment, "
                         "1 or 0.")
    return mode


def parse_metadata_duration(metadata: str) -> float | None:
    """The `duration` in the metadata JSON, in seconds; None when absent (the decoded audio says then).

    go-livepeer sends `{"duration":"12"}`; a number works too. Bad JSON, a non-object or a non-numeric
    duration is a 400.
    """
    if not metadata.strip():
        return None
    try:
        data = json.loads(metadata)
    except (ValueError, RecursionError):  # bad JSON, a number past int()'s digit limit, deep nesting
        raise BadRequest("Invalid metadata: not valid JSON.") from None
    if data is None:
        return None
    if not isinstance(data, dict):
        raise BadRequest("Invalid metadata: expected a JSON object.")
    raw = data.get("duration")
    if raw is None:
        return None
    if isinstance(raw, bool):  # float(True) is 1.0, but a boolean is not a duration
        raise BadRequest(DURATION_MESSAGE)
    try:
        duration = float(raw)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer too large for a float
        raise BadRequest(DURATION_MESSAGE) from None
    if not math.isfinite(duration):
        raise BadRequest(DURATION_MESSAGE)
    return duration


def word_limit_message(model_id: str) -> str:
    return f"Word timestamps are only supported for audio files up to 60 minutes for model {model_id}."
