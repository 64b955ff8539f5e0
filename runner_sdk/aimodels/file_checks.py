"""The whole file: it must be an array of objects, then the rules across entries that go-livepeer applies at
start-up (one model warm and cold panics; more warm managed containers than GPUs aborts)."""

from __future__ import annotations

from typing import Any

from .entry_checks import Entry, check_entry
from .field_checks import check_types, entry_fields
from .findings import Report, Severity
from .gojson import Pairs, type_name


def check_file(report: Report, doc: Any, gpus: int | None) -> None:
    """Check a parsed aiModels.json (`gojson.parse_json`), entry by entry and then across entries.

    Args:
        report: where the findings go.
        doc: the parsed document.
        gpus: the GPUs of the AI worker's -nvidia list, or None when not known.
    """
    if not isinstance(doc, list) or isinstance(doc, Pairs):
        report.add("$", Severity.STOPS_NODE,
                   f"the file must be a JSON array of model entries, got {type_name(doc)}: the node exits "
                   "with a parse error")
        return
    if not doc:
        report.add("$", Severity.ADVICE, "no entries: the AI worker serves nothing")
        return
    entries: list[Entry] = []
    for i, item in enumerate(doc):
        if item is None:
            report.add(f"$[{i}]", Severity.STOPS_NODE,
                       "null entry: Go reads it as an entry with an empty pipeline, which panics "
                       "'Pipeline is not valid capability'")
            continue
        if not isinstance(item, Pairs):
            report.add(f"$[{i}]", Severity.STOPS_NODE,
                       f"entry must be a JSON object, got {type_name(item)}: the node exits with a parse error")
            continue
        fields = entry_fields(report, i, item)
        bad = check_types(report, fields)
        # go-livepeer stops at the first parse error; we go on to report everything else in one run,
        # leaving out the fields that did not parse.
        entry = Entry(i, values={k: v for k, (_p, v) in fields.items() if k not in bad and v is not None},
                      paths={k: p for k, (p, _v) in fields.items()}, bad=bad)
        check_entry(report, entry)
        if not bad:  # cross-entry rules only for entries Go could read
            entries.append(entry)
    _same_model(report, entries)
    _warm_managed(report, entries, gpus)


def _same_model(report: Report, entries: list[Entry]) -> None:
    """Entries for one pipeline and model: warm and cold together panics; repeats sum their capacity."""
    groups: dict[tuple[str, str], list[Entry]] = {}
    for e in entries:
        groups.setdefault((e.values.get("pipeline", ""), e.values.get("model_id", "")), []).append(e)
    for (pipeline, model_id), items in groups.items():
        warm = [e for e in items if e.warm]
        cold = [e for e in items if not e.warm]
        if warm and cold:
            report.add(f"$[{cold[0].index}].warm", Severity.STOPS_NODE,
                       f"{pipeline} {model_id!r} is warm in $[{warm[0].index}] and cold here: go-livepeer panics "
                       "'Cannot have same model_id ... as cold and warm in same AI worker'; make every entry "
                       "for this model warm (external entries too)")
        for same in (warm, cold):
            if len(same) > 1:
                total = sum(e.values.get("capacity", 1) for e in same)
                extra = ""
                if any(e.url for e in same):
                    extra = "; requests pick one of the external urls effectively at random (Go map order), not by load"
                report.add(f"$[{same[1].index}]", Severity.ADVICE,
                           f"{pipeline} {model_id!r} appears in entries "
                           f"{', '.join(f'$[{e.index}]' for e in same)}: their capacities are summed ({total}){extra}")


def _warm_managed(report: Report, entries: list[Entry], gpus: int | None) -> None:
    """go-livepeer starts `capacity` containers per warm managed entry, one per GPU, or aborts start-up."""
    warm_managed = [(e.index, e.values.get("capacity", 1)) for e in entries if e.warm and not e.url]
    needed = sum(max(c, 1) if isinstance(c, int) else 1 for _i, c in warm_managed)
    if warm_managed and gpus is not None and needed > gpus:
        report.add(f"$[{warm_managed[-1][0]}]", Severity.STOPS_NODE,
                   f"{needed} warm managed containers (entries x capacity) but {gpus} GPU(s): warming fails "
                   "with 'insufficient capacity' and start-up aborts (public docs say the extra entries are "
                   "skipped; the code aborts)")
    elif warm_managed and gpus is None and needed > 1:
        report.add("$", Severity.ADVICE,
                   f"{needed} warm managed containers (entries x capacity) need {needed} GPUs in -nvidia; "
                   "pass --gpus N to check")
