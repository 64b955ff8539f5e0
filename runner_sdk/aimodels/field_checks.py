"""One entry's keys and JSON types, as Go's `encoding/json` reads them into an AIModelConfig.

`entry_fields` maps each key to the field Go fills (case-insensitively, the last duplicate winning) and reports
keys Go ignores; `check_types` reports the type errors that make the node exit with a parse error.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from .findings import Report, Severity
from .gojson import Pairs, is_number, key_path, type_name
from .known import FIELDS, PRICE_WITH_CURRENCY, QUOTED_NUMBER, STRING_FIELDS

# field name -> (JSON path, value) as Go would fill it.
Fields = dict[str, tuple[str, Any]]

_PARSE_ERROR = "the node exits with a parse error"


def entry_fields(report: Report, i: int, pairs: Pairs) -> Fields:
    """Map each AIModelConfig field of entry `i` to (path, value) as Go would fill it; report unknown keys."""
    base = f"$[{i}]"
    fields: Fields = {}
    for key, value in pairs:
        path = key_path(base, key)
        field = next((f for f in FIELDS if f == key), None) or next(
            (f for f in FIELDS if f.lower() == key.lower()), None)
        if field is None:
            close = difflib.get_close_matches(key.lower().replace("-", "_"), FIELDS, n=1, cutoff=0.7)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            report.add(path, Severity.IGNORED, f"unknown field {key!r}: go-livepeer ignores it{hint}")
            continue
        if field != key:
            report.add(path, Severity.ADVICE,
                       f"{key!r} is matched to {field!r} only because Go compares field names "
                       f"case-insensitively; write {field!r}")
        if field in fields:
            report.add(path, Severity.ADVICE,
                       f"{field!r} appears more than once in this entry; go-livepeer keeps the last one")
        fields[field] = (path, value)
    return fields


def check_types(report: Report, fields: Fields) -> set[str]:
    """Type errors that make encoding/json fail (the node exits). Returns the fields that have one."""
    bad: set[str] = set()
    for name in STRING_FIELDS:
        if name in fields:
            path, v = fields[name]
            if v is not None and not isinstance(v, str):
                report.add(path, Severity.STOPS_NODE,
                           f"{name} must be a JSON string, got {type_name(v)}: {_PARSE_ERROR}")
                bad.add(name)
    for name in ("warm", "capacity", "price_per_unit", "pixels_per_unit", "optimization_flags"):
        if name in fields and _TYPE_CHECKS[name](report, name, fields):
            bad.add(name)
    return bad


def _warm_type(report: Report, name: str, fields: Fields) -> bool:
    path, v = fields[name]
    if v is None or isinstance(v, bool):
        return False
    fix = " (write true, without quotes)" if isinstance(v, str) and v.strip().lower() == "true" else ""
    report.add(path, Severity.STOPS_NODE,
               f"warm must be a JSON boolean, got {type_name(v)} {json.dumps(v)}{fix}: {_PARSE_ERROR}")
    return True


def _capacity_type(report: Report, name: str, fields: Fields) -> bool:
    path, v = fields[name]
    if v is None or (isinstance(v, int) and not isinstance(v, bool)):
        return False
    fix = ""
    if isinstance(v, str) and v.strip().isdigit():
        fix = f" (write {v.strip()}, without quotes)"
    elif isinstance(v, float) and v.is_integer():
        fix = f" (write {int(v)}: Go does not read {json.dumps(v)} into an int)"
    report.add(path, Severity.STOPS_NODE,
               f"capacity must be a JSON integer, got {type_name(v)} {json.dumps(v)}{fix}: {_PARSE_ERROR}")
    return True


def _price_type(report: Report, name: str, fields: Fields) -> bool:
    path, v = fields[name]
    if is_number(v):
        return False
    report.add(path, Severity.STOPS_NODE, price_type_message(name, v, fields))
    return True


def _flags_type(report: Report, name: str, fields: Fields) -> bool:
    path, v = fields[name]
    if v is None:
        return False
    if not isinstance(v, Pairs):
        report.add(path, Severity.STOPS_NODE, f"optimization_flags must be a JSON object, got {type_name(v)}: "
                                              f"{_PARSE_ERROR}")
        return True
    bad = False
    for key, fv in v:
        if not (fv is None or isinstance(fv, (bool, str))):
            report.add(key_path(path, key), Severity.STOPS_NODE,
                       f"flag values must be a JSON boolean or string, got {type_name(fv)} "
                       f"{json.dumps(fv)}: {_PARSE_ERROR}")
            bad = True
    return bad


_TYPE_CHECKS = {"warm": _warm_type, "capacity": _capacity_type, "price_per_unit": _price_type,
                "pixels_per_unit": _price_type, "optimization_flags": _flags_type}


def price_type_message(name: str, v: Any, fields: Fields) -> str:
    """Why a non-number `price_per_unit`/`pixels_per_unit` stops the node, with the number form to write."""
    got = "null" if v is None else f"{type_name(v)} {json.dumps(v)}"
    msg = (f"{name} must be a JSON number, got {got}: go-livepeer fails with "
           f"'value is not a number: {json.dumps(v)}' and the node exits")
    if isinstance(v, str):
        m = PRICE_WITH_CURRENCY.match(v)
        if m:
            number, currency = m.group(1), m.group(2).upper()
            have = fields.get("currency", ("", None))[1]
            extra = "" if have == currency else f' and "currency": "{currency}"'
            msg += (f". The '<price><currency>' form only works in the -pricePerUnit flag; here write "
                    f'"{name}": {number}{extra}')
        elif QUOTED_NUMBER.fullmatch(v):
            msg += f" (write {v.strip()}, without quotes)"
    return msg
