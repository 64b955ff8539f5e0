"""The SDK and the runners stay readable: no module over 400 lines (synthetic model builders excepted) and no
function over 80 lines. A guard, so the next pipeline adds a small module instead of growing a big one."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _modules() -> list[Path]:
    files = sorted((ROOT / "runner_sdk").rglob("*.py")) + sorted((ROOT / "runners").rglob("*.py"))
    assert len(files) > 40  # the walk found the packages
    return files


def test_no_module_over_400_lines():
    too_long = {str(p.relative_to(ROOT)): n for p in _modules()
                if p.name != "synth.py" and (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert too_long == {}


def test_no_function_over_80_lines():
    too_long = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = lines
    assert too_long == {}
