"""What `aimodels validate` reports: a finding is a JSON path, a severity and a message.

Each severity names what go-livepeer does with what was written:
- `stops-node`: the node exits, panics or aborts start-up (or never gets past the health wait).
- `ignored`: go-livepeer accepts the file but silently drops or skips what was written.
- `advice`: accepted and used, but probably not what the operator wants.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    """What go-livepeer does with a finding's subject (see the module doc)."""

    STOPS_NODE = "stops-node"
    IGNORED = "ignored"
    ADVICE = "advice"


@dataclass(frozen=True)
class Finding:
    """One problem in an aiModels.json.

    Attributes:
        path: where, as a JSON path ("$[0].price_per_unit", "$" for the whole file).
        severity: what go-livepeer does about it.
        message: what is wrong, what go-livepeer does, and the fix where there is one.
    """

    path: str
    severity: Severity
    message: str

    def as_dict(self) -> dict[str, str]:
        """{"path", "severity", "message"} with the severity as its string (for `--json`)."""
        d = asdict(self)
        d["severity"] = str(self.severity)
        return d

    def __str__(self) -> str:
        return f"{self.severity:<10}  {self.path}: {self.message}"


@dataclass
class Report:
    """The findings gathered so far, in the order the checks made them."""

    findings: list[Finding] = field(default_factory=list)

    def add(self, path: str, severity: Severity, message: str) -> None:
        self.findings.append(Finding(path, severity, message))


def stops_node(findings: list[Finding]) -> bool:
    """Whether go-livepeer would fail to start with the file these findings are about.

    Args:
        findings: what `validate_text` or `validate_file` returned.

    Returns:
        True when any finding is `stops-node`.
    """
    return any(f.severity is Severity.STOPS_NODE for f in findings)


def format_findings(findings: list[Finding], source: str) -> str:
    """A human-readable report: one line per finding, worst first, then a one-line verdict.

    Args:
        findings: what `validate_text` or `validate_file` returned.
        source: what to call the file in the verdict (its path, usually).

    Returns:
        The report, lines joined with newlines, without a trailing one.
    """
    order = {Severity.STOPS_NODE: 0, Severity.IGNORED: 1, Severity.ADVICE: 2}
    lines = [str(f) for f in sorted(findings, key=lambda f: order[f.severity])]
    counts = {s: sum(1 for f in findings if f.severity is s) for s in Severity}
    verdict = "FAIL: go-livepeer would not start with this file" if counts[Severity.STOPS_NODE] else "OK"
    lines.append(f"{source}: {verdict} ({counts[Severity.STOPS_NODE]} stops-node, "
                 f"{counts[Severity.IGNORED]} ignored, {counts[Severity.ADVICE]} advice)")
    return "\n".join(lines)
