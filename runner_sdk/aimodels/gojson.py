"""Reading JSON the way go-livepeer's `encoding/json` sees it.

Go reads aiModels.json into `[]AIModelConfig` with no schema: unknown keys are ignored, keys are matched to
fields case-insensitively, the last duplicate key wins, and any type error makes the node exit. Python's `json`
keeps the difference between `2`, `2.0` and `"2"`, which is all the type checks need; objects are read as
their (key, value) pairs so duplicates and key spellings survive for the checks to see.
"""

from __future__ import annotations

import json
import re
from typing import Any


class Pairs(list):
    """A JSON object as its (key, value) pairs, in order, duplicates kept (Go reads them in order too)."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (Go's encoding/json rejects it)")


def parse_json(text: str) -> Any:
    """Parse `text` keeping objects as `Pairs`.

    Raises:
        ValueError: not JSON Go would read (NaN and Infinity included).
    """
    return json.loads(text, object_pairs_hook=Pairs, parse_constant=_reject_constant)


def key_path(base: str, key: str) -> str:
    """The JSON path of `key` under `base`: `$[0].url`, or `$[0]["odd key"]` when the key is no identifier."""
    return f"{base}.{key}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else f"{base}[{json.dumps(key)}]"


# Checked in order: a bool is an int and Pairs is a list to Python.
_TYPE_NAMES = ((bool, "a boolean"), (int, "an integer"), (float, "a decimal number"), (str, "a string"),
               (Pairs, "an object"), (list, "an array"))


def type_name(v: Any) -> str:
    """What a JSON value is, for messages: "a string", "an integer", "null"..."""
    if v is None:
        return "null"
    return next((name for t, name in _TYPE_NAMES if isinstance(v, t)), type(v).__name__)


def is_number(v: Any) -> bool:
    """A JSON number (booleans are not, though Python's bool is an int)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)
