"""`aimodels validate` knows the pipelines of the pipeline table (runner_sdk/pipelines.py), and only those."""

from __future__ import annotations

import json

import pytest

from runner_sdk import pipelines
from runner_sdk.aimodels.validate import Severity, stops_node, validate_text


def _entry(pipeline: str, **extra) -> dict:
    row = pipelines.PIPELINES.get(pipeline)
    model_id = row.default_model_id if row and "/" in row.default_model_id else "org/model"
    return {"pipeline": pipeline, "model_id": model_id, "warm": True, "price_per_unit": 1, **extra}


def test_a_file_naming_every_table_pipeline_has_no_capability_finding():
    text = json.dumps([_entry(name, url=f"http://runner-{i}:8000", token="t")
                       for i, name in enumerate(pipelines.PIPELINES)])
    findings = validate_text(text)
    assert not [f for f in findings if f.path.endswith(".pipeline")], [str(f) for f in findings]
    assert not stops_node(findings), [str(f) for f in findings]


@pytest.mark.parametrize("name", list(pipelines.PIPELINES))
def test_each_table_pipeline_is_a_capability(name):
    findings = validate_text(json.dumps([_entry(name)]), gpus=1)
    assert not stops_node(findings), [str(f) for f in findings]


@pytest.mark.parametrize("name", ["text-to-3d", "Text-To-Image", "text_to_image", ""])
def test_a_pipeline_outside_the_table_stops_the_node(name):
    findings = validate_text(json.dumps([_entry(name)]), gpus=1)
    assert ("$[0].pipeline", Severity.STOPS_NODE) in {(f.path, f.severity) for f in findings}
    assert stops_node(findings)


def test_sfast_applies_to_exactly_the_table_diffusion_pipelines():
    for name, row in pipelines.PIPELINES.items():
        findings = validate_text(json.dumps([_entry(name, optimization_flags={"SFAST": True})]), gpus=1)
        ignored = [f for f in findings if f.path == "$[0].optimization_flags.SFAST" and f.severity is Severity.IGNORED]
        assert bool(ignored) != row.diffusion, (name, [str(f) for f in findings])


def test_table_default_ids_are_known_spellings():
    """A case slip in a table default id is caught like the hand-listed ones."""
    for row in pipelines.PIPELINES.values():
        if "/" not in row.default_model_id:
            continue
        wrong = row.default_model_id.swapcase()
        findings = validate_text(json.dumps([dict(_entry(row.name), model_id=wrong)]), gpus=1)
        assert any("only in case" in f.message for f in findings), row.name
