"""aiModels.json tooling: check a file the way go-livepeer parses it, and plan one from measured VRAM.

- `validate`: findings with a JSON path and a severity (contract section 10).
- `results`: the bench results schema (what `runner-sdk bench` writes) and the committed reference estimates.
- `plan`: which models to keep warm on which GPU, as aiModels.json entries plus `docker run` lines.
"""

from .validate import Finding, Severity, validate_file, validate_text

__all__ = ["Finding", "Severity", "validate_file", "validate_text"]
