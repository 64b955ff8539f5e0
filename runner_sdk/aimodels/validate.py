"""Check an aiModels.json the way go-livepeer reads it (contract section 10, section 9 for the flags).

go-livepeer reads the file with Go's `encoding/json` into `[]AIModelConfig`: no schema, unknown keys
ignored, keys matched to fields case-insensitively, the last duplicate key wins, and any type error makes the
node exit. `price_per_unit`/`pixels_per_unit` are a `big.Rat` that only a JSON number parses into; the
optimization flags are a map whose values must be a JSON bool or string. Start-up then panics or aborts on a
few semantic errors (same model warm and cold, more warm managed containers than GPUs, negative price).

Each finding has a severity naming what go-livepeer does with it:
- `stops-node`: the node exits, panics or aborts start-up (or never gets past the health wait).
- `ignored`: go-livepeer accepts the file but silently drops or skips what was written.
- `advice`: accepted and used, but probably not what the operator wants.

The work is split by job: `gojson` (reading JSON as Go does), `known` (pipelines, fields, ids, flags),
`field_checks` (keys and JSON types), `entry_checks` (one entry's values), `file_checks` (the file and the
rules across entries), `findings` (what is reported). This module is the entry point.
"""

from __future__ import annotations

from pathlib import Path

from .file_checks import check_file
from .findings import Finding, Report, Severity, format_findings, stops_node
from .gojson import parse_json
from .known import (
    CAPABILITY_PIPELINES,
    DIFFUSION_PIPELINES,
    KNOWN_FLAGS,
    KNOWN_MODEL_IDS,
    OUR_PIPELINES,
)

__all__ = [
    "CAPABILITY_PIPELINES", "DIFFUSION_PIPELINES", "KNOWN_FLAGS", "KNOWN_MODEL_IDS", "OUR_PIPELINES", "Finding",
    "Severity", "format_findings", "parse_json", "stops_node", "validate_file", "validate_text",
]


def validate_text(text: str, gpus: int | None = None) -> list[Finding]:
    """All findings for an aiModels.json document given as text.

    Args:
        text: the file's contents.
        gpus: how many GPUs the AI worker has (its -nvidia list); None skips the warm-containers-per-GPU check
            (an advice finding says so when it matters).

    Returns:
        The findings, in the order the checks made them; text that is not JSON gives one `stops-node` finding.
    """
    report = Report()
    try:
        doc = parse_json(text)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        report.add("$", Severity.STOPS_NODE, f"not valid JSON ({exc}): the node exits")
        return report.findings
    check_file(report, doc, gpus)
    return report.findings


def validate_file(path: str | Path, gpus: int | None = None) -> list[Finding]:
    """All findings for the aiModels.json at `path` (see `validate_text`).

    Raises:
        OSError: the file cannot be read. UnicodeDecodeError: it is not UTF-8.
    """
    return validate_text(Path(path).read_text(encoding="utf-8"), gpus)
