"""The aiModels.json validator over a corpus of good, bad and silently-ignored files (contract section 10)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runner_sdk.aimodels.validate import Severity, stops_node, validate_file, validate_text

CORPUS = Path(__file__).parent / "aimodels_corpus"
STOP, IGN, ADV = Severity.STOPS_NODE, Severity.IGNORED, Severity.ADVICE

# file -> (--gpus, findings that must be present as (JSON path, severity)).
# bad/ files must stop the node; good/ and ignored/ files must not; ignored/ ones must report what is dropped.
EXPECTED: dict[str, tuple[int | None, set[tuple[str, Severity]]]] = {
    "good/contract_example.json": (None, {("$[2].currency", ADV), ("$[2].model_id", ADV)}),
    "good/guide_single_gpu.json": (1, set()),
    "good/managed_sfast.json": (2, {("$[0].optimization_flags.SFAST", ADV)}),
    "good/two_runners_one_model.json": (None, {("$[1]", ADV)}),
    "good/sfast_and_deepcache.json": (1, {("$[0].optimization_flags", ADV)}),
    # Ids no gateway sends (wrong case, Ollama tag, no organisation): accepted, never routed to (ignored).
    "ignored/unroutable_ids.json": (None, {("$[0].model_id", IGN), ("$[1].model_id", IGN), ("$[2].model_id", IGN),
                                    ("$[3].url", ADV), ("$[3].Capacity", ADV)}),
    "bad/docs_usd_price.json": (None, {("$[0].price_per_unit", STOP)}),
    "bad/price_quoted_number.json": (None, {("$[0].price_per_unit", STOP)}),
    "bad/price_null.json": (None, {("$[0].price_per_unit", STOP)}),
    "bad/price_negative.json": (None, {("$[0].price_per_unit", STOP)}),
    "bad/price_nan.json": (None, {("$", STOP)}),
    "bad/capacity_string.json": (None, {("$[0].capacity", STOP)}),
    "bad/capacity_decimal.json": (None, {("$[0].capacity", STOP), ("$[1].capacity", STOP)}),
    "bad/warm_string.json": (None, {("$[0].warm", STOP)}),
    "bad/flag_number.json": (None, {("$[0].optimization_flags.SFAST", STOP)}),
    "bad/flags_array.json": (None, {("$[0].optimization_flags", STOP)}),
    "bad/pipeline_unknown.json": (None, {("$[0].pipeline", STOP)}),
    "bad/pipeline_case.json": (None, {("$[0].pipeline", STOP)}),
    "bad/url_no_scheme.json": (None, {("$[0].url", STOP)}),
    "bad/url_other_scheme.json": (None, {("$[0].url", STOP)}),
    "bad/url_trailing_space.json": (None, {("$[0].url", STOP)}),
    "bad/warm_and_cold.json": (None, {("$[1].warm", STOP)}),
    "bad/too_many_warm.json": (2, {("$[1]", STOP)}),
    "bad/not_an_array.json": (None, {("$", STOP)}),
    "bad/trailing_comma.json": (None, {("$", STOP)}),
    "bad/null_entry.json": (None, {("$[0]", STOP)}),
    "bad/model_id_empty.json": (None, {("$[0].model_id", STOP)}),
    "bad/pixels_per_unit_zero.json": (None, {("$[0].pixels_per_unit", STOP)}),
    "ignored/flags_without_warm.json": (None, {("$[0].optimization_flags", IGN)}),
    "ignored/flags_on_url.json": (None, {("$[0].optimization_flags", IGN)}),
    "ignored/deepcache_lightning.json": (1, {("$[0].optimization_flags.DEEPCACHE", IGN)}),
    "ignored/deepcache_turbo_with_sfast.json": (1, {("$[0].optimization_flags.DEEPCACHE", IGN)}),
    "ignored/unknown_field.json": (1, {("$[0].pricePerUnit", IGN)}),
    "ignored/token_without_url.json": (1, {("$[0].token", IGN)}),
    "ignored/url_query.json": (None, {("$[0].url", IGN)}),
    "ignored/flags_on_llm.json": (1, {("$[0].optimization_flags.SFAST", IGN),
                                      ("$[0].optimization_flags.NOT_A_FLAG", IGN)}),
}


def test_every_corpus_file_has_an_expectation():
    on_disk = {str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*.json")}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_file(name):
    gpus, must = EXPECTED[name]
    findings = validate_file(CORPUS / name, gpus=gpus)
    got = {(f.path, f.severity) for f in findings}
    assert must <= got, f"missing {must - got}; got {[str(f) for f in findings]}"
    assert stops_node(findings) == name.startswith("bad/"), [str(f) for f in findings]
    if name.startswith("good/"):
        assert not [f for f in findings if f.severity is IGN], [str(f) for f in findings]


def test_public_docs_usd_price_string_names_the_fix():
    """The docs' "0.5e-2USD" fails in go-livepeer; the finding quotes Go's error and gives the number form."""
    [finding] = [f for f in validate_file(CORPUS / "bad/docs_usd_price.json") if f.severity is STOP]
    assert "value is not a number" in finding.message
    assert '"price_per_unit": 0.5e-2' in finding.message


def test_deepcache_is_not_skipped_for_a_normal_sdxl():
    text = json.dumps([{"pipeline": "text-to-image", "model_id": "stabilityai/stable-diffusion-xl-base-1.0",
                        "warm": True, "optimization_flags": {"DEEPCACHE": True}, "price_per_unit": 1}])
    assert not [f for f in validate_text(text, gpus=1) if f.severity is IGN]


def test_warm_managed_count_is_entries_times_capacity():
    entry = {"pipeline": "audio-to-text", "model_id": "openai/whisper-large-v3", "warm": True, "capacity": 3,
             "price_per_unit": 1}
    text = json.dumps([entry])
    assert stops_node(validate_text(text, gpus=2))
    assert not stops_node(validate_text(text, gpus=3))
    # External runners hold no GPU slot of go-livepeer's, whatever their capacity.
    external = dict(entry, url="http://a2t:8000", token="t", capacity=30)
    assert not stops_node(validate_text(json.dumps([external]), gpus=1))


def test_repeated_same_warm_entries_sum_their_capacity():
    entry = {"pipeline": "llm", "model_id": "meta-llama/Meta-Llama-3.1-8B-Instruct", "url": "http://a:1",
             "token": "t", "warm": True, "capacity": 3, "price_per_unit": 1}
    findings = validate_text(json.dumps([entry, dict(entry, url="http://b:1", capacity=5)]))
    assert any("summed (8)" in f.message for f in findings)


def test_last_duplicate_key_wins_like_go():
    text = ('[{"pipeline": "audio-to-text", "model_id": "openai/whisper-large-v3", "price_per_unit": "1", '
            '"price_per_unit": 2}]')
    findings = validate_text(text)
    assert not stops_node(findings)
    assert any(f.path == "$[0].price_per_unit" and "more than once" in f.message for f in findings)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner_sdk.aimodels", *args], capture_output=True, text=True,
                          timeout=60)


def test_cli_exit_codes_and_human_output():
    bad = _cli("validate", str(CORPUS / "bad/docs_usd_price.json"))
    assert bad.returncode == 1
    assert "stops-node" in bad.stdout and "$[0].price_per_unit" in bad.stdout and "FAIL" in bad.stdout
    ignored = _cli("validate", "--gpus", "1", str(CORPUS / "ignored/deepcache_lightning.json"))
    assert ignored.returncode == 0, ignored.stdout
    assert "ignored" in ignored.stdout
    assert _cli("validate", str(CORPUS / "does-not-exist.json")).returncode == 2


def test_cli_json_output():
    proc = _cli("validate", "--json", "--gpus", "1", str(CORPUS / "bad/too_many_warm.json"))
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["ok"] is False
    assert {"path": "$[1]", "severity": "stops-node"} in [
        {k: f[k] for k in ("path", "severity")} for f in report["findings"]]


def test_add_subcommands_registers_under_another_cli(capsys):
    """How runner_sdk/cli.py mounts the commands: `runner-sdk aimodels validate|plan`."""
    import argparse

    from runner_sdk.aimodels.cli import add_subcommands

    parser = argparse.ArgumentParser(prog="runner-sdk")
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["aimodels", "validate", "--gpus", "1", str(CORPUS / "good/guide_single_gpu.json")])
    assert args.func(args) == 0
    assert "OK" in capsys.readouterr().out
    args = parser.parse_args(["aimodels", "validate", str(CORPUS / "bad/warm_string.json")])
    assert args.func(args) == 1
    args = parser.parse_args(["aimodels", "plan", "--gpu", "12GiB", "--token", "t"])
    assert args.func(args) == 0
    assert "openai/whisper-large-v3" in capsys.readouterr().out
