"""`runner-sdk aimodels validate|plan` (also `python -m runner_sdk.aimodels validate|plan`)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from . import demand as demand_mod
from . import plan as planner
from .compose import compose_text
from .explain import explain
from .results import ResultsError, load_results
from .validate import Severity, format_findings, stops_node, validate_file, validate_text


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        findings = validate_file(args.file, args.gpus)
    except OSError as exc:
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"file": str(args.file), "ok": not stops_node(findings),
                          "findings": [f.as_dict() for f in findings]}, indent=2))
    else:
        print(format_findings(findings, str(args.file)))
    return 1 if stops_node(findings) else 0


def _pairs(values: list[str], sep: str, what: str) -> list[tuple[str, str]]:
    out = []
    for v in values:
        left, found, right = v.partition(sep)
        if not found or not left or not right:
            raise SystemExit(f"{what} must look like LEFT{sep}RIGHT, got {v!r}")
        out.append((left, right))
    return out


def _gpus(args: argparse.Namespace) -> list[planner.GPU]:
    """--gpu sizes, else NVML. Raises ValueError (no unit, no GPU)."""
    if args.gpu:
        return [planner.gpu_from_text(i, s) for i, s in enumerate(args.gpu)]
    try:
        return planner.detect_gpus()
    except Exception as exc:  # NVML missing or no driver: say how to give the sizes instead
        raise ValueError(f"no GPU detected with NVML ({exc}); give the sizes with --gpu 24GiB --gpu 12GiB") from exc


def _demand(args: argparse.Namespace) -> list[demand_mod.Demand] | None:
    """--demand-file, then --demand and --model items, in order; None for the guide's default."""
    items = demand_mod.read_file(args.demand_file) if args.demand_file else []
    items += [demand_mod.parse_item(d) for d in args.demand]
    items += [demand_mod.parse_item(f"{p}:{m}") for p, m in _pairs(args.model, ":", "--model")]
    return items or None


def _make(args: argparse.Namespace) -> planner.Plan:
    results = load_results(args.results) if args.results else None
    capacities = {p: int(n) for p, n in _pairs(args.capacity, "=", "--capacity")}
    return planner.make_plan(results, _gpus(args), demand=_demand(args), headroom=args.headroom,
                             capacities=capacities, managed=args.managed, port_base=args.port_base)


def _json_report(plan: planner.Plan, entries: list, lines: list[str], findings: list) -> str:
    return json.dumps({
        "source": plan.source, "headroom": plan.headroom, "managed": plan.managed, "tier": plan.tier,
        "gpus": [{"index": g.index, "memory_bytes": g.memory_bytes, "name": g.name} for g in plan.gpus],
        "placements": [{"pipeline": p.model.pipeline, "model_id": p.model.model_id, "gpu": p.gpu.index,
                        "mode": p.mode, "external": p.external, "quantize": p.quantize or None,
                        "capacity": p.capacity, "peak_vram_bytes": p.peak_bytes, "need_bytes": p.need_bytes,
                        "figures": p.model.source, "port": p.port if p.external else None, "why": p.why}
                       for p in plan.placements],
        "left_out": [{"pipeline": lo.pipeline, "model_id": lo.model_id, "reason": lo.why} for lo in plan.left_out],
        "aimodels": entries, "docker_run": lines,
        "findings": [f.as_dict() for f in findings if f.severity is not Severity.ADVICE],
    }, indent=2)


def _write_out(out: Path, plan: planner.Plan, aimodels_text: str, explanation: str, token: str,
               lines: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "aiModels.json").write_text(aimodels_text)
    (out / "plan.md").write_text(explanation)
    if lines:
        env = out / "runners.env"
        env.write_text(f"AUTH_TOKEN={token}\n")
        env.chmod(0o600)
        script = ["#!/bin/sh", "set -eu", 'cd "$(dirname "$0")"',
                  '[ -n "${AUTH_TOKEN:-}" ] || { set -a; . ./runners.env; set +a; }', *lines[2:]]
        (out / "run-runners.sh").write_text("\n".join(script) + "\n")
        (out / "run-runners.sh").chmod(0o755)


def cmd_plan(args: argparse.Namespace) -> int:
    """`aimodels plan`: plan, validate the planned aiModels.json, then print or write it.

    Args:
        args: the parsed flags.

    Returns:
        0, 2 when it cannot plan (bad size, demand or results), 3 when the planned file would stop the node.
    """
    try:
        plan = _make(args)
    except (ResultsError, ValueError) as exc:
        print(f"cannot plan: {exc}", file=sys.stderr)
        return 2
    token = args.token or os.environ.get("AUTH_TOKEN") or planner.new_token()
    entries = planner.aimodels_entries(plan, token=token, host=args.host, sfast=args.sfast)
    aimodels_text = json.dumps(entries, indent=2) + "\n"
    # The plan must be a file go-livepeer starts with: check it the same way an operator would.
    findings = validate_text(aimodels_text, gpus=len(plan.gpus))
    if stops_node(findings):
        print(format_findings(findings, "planned aiModels.json"), file=sys.stderr)
        return 3
    lines = planner.docker_run_lines(plan, host=args.host, image=args.image, model_dir=args.model_dir,
                                     sfast=args.sfast)
    explanation = explain(plan)
    if args.compose:
        how = " ".join([*(f"--gpu {shlex.quote(g)}" for g in args.gpu), *(f"--demand {d}" for d in args.demand)])
        Path(args.compose).write_text(compose_text(plan, image=args.image, sfast=args.sfast,
                                                   title=f"Generated by `runner-sdk aimodels plan {how} --compose`"))
    if args.json:
        print(_json_report(plan, entries, lines, findings))
    elif args.out:
        _write_out(Path(args.out), plan, aimodels_text, explanation, token, lines)
        print(explanation)
        print(f"wrote {args.out}/aiModels.json, {args.out}/plan.md"
              + (f", {args.out}/run-runners.sh and {args.out}/runners.env (the token, mode 600)" if lines else ""))
    else:
        print(explanation)
        print("# aiModels.json\n" + aimodels_text)
        print("# go-livepeer flags\n" + planner.go_livepeer_flags(plan, args.image) + "\n")
        if lines:
            print(f"# docker run lines (export AUTH_TOKEN={token} first)\n" + "\n".join(lines))
    if args.compose:
        print(f"wrote {args.compose}")
    return 0


def _add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check an aiModels.json the way go-livepeer parses it",
                       description="Findings name a JSON path and a severity: stops-node (go-livepeer exits or "
                                   "aborts start-up), ignored (silently dropped) or advice. Exit 1 when any "
                                   "finding stops the node.")
    p.add_argument("file", type=Path, help="the aiModels.json file")
    p.add_argument("--gpus", type=int, default=None,
                   help="GPUs the AI worker has (its -nvidia list): checks warm managed containers against it")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_validate)


def _add_plan(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="propose warm models per GPU; write aiModels.json and docker run lines",
                       description=planner.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default=None,
                   help="bench results.json (or its folder); default: the committed reference ESTIMATES")
    p.add_argument("--gpu", action="append", default=[], metavar="[NAME=]SIZE",
                   help="a GPU's memory with its unit, e.g. 24GiB or 'RTX 4090=24GiB'; repeat per GPU in device "
                        "order (default: detect with NVML). 24GB is 10^9 bytes: a card sold as 24 GB has 24GiB")
    p.add_argument("--headroom", type=float, default=planner.DEFAULT_HEADROOM,
                   help="margin over warm peak VRAM, as a fraction (default %(default)s)")
    p.add_argument("--demand", action="append", default=[], metavar="PIPELINE[:MODEL_ID][=warm|cold]",
                   help="what you want to earn from, in order (repeatable); default: the guide's tier strategy")
    p.add_argument("--demand-file", default=None, help="demand items, one per line (or a JSON list), in order")
    p.add_argument("--model", action="append", default=[], metavar="PIPELINE:MODEL_ID",
                   help="same as --demand PIPELINE:MODEL_ID")
    p.add_argument("--capacity", action="append", default=[], metavar="PIPELINE=N",
                   help="capacity for a pipeline (default: the best measured throughput, else 1)")
    p.add_argument("--managed", action="store_true",
                   help="go-livepeer-managed containers (no url, one warm model per GPU) instead of external runners")
    p.add_argument("--sfast", action="store_true", help="enable SFAST for text-to-image runners")
    p.add_argument("--host", default="127.0.0.1", help="host go-livepeer reaches the runners at")
    p.add_argument("--port-base", type=int, default=planner.DEFAULT_PORT_BASE, help="first host port")
    p.add_argument("--image", default=planner.DEFAULT_IMAGE, help="runner image repository (tag = pipeline)")
    p.add_argument("--model-dir", default="/var/lib/livepeer/models", help="host folder mounted at /models")
    p.add_argument("--token", default=None, help="shared bearer token (default: $AUTH_TOKEN, else a new one)")
    p.add_argument("--out", default=None, help="write aiModels.json, plan.md and run-runners.sh here")
    p.add_argument("--compose", default=None, metavar="FILE",
                   help="also write the plan as a Docker Compose file (go-livepeer pinned + the runners)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plan)


def add_subcommands(subparsers: argparse._SubParsersAction) -> None:
    """Register `aimodels validate` and `aimodels plan` under an existing CLI (runner-sdk)."""
    p = subparsers.add_parser("aimodels", help="check or plan go-livepeer's aiModels.json")
    sub = p.add_subparsers(dest="aimodels_command", required=True)
    _add_validate(sub)
    _add_plan(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runner_sdk.aimodels", description=__doc__)
    sub = parser.add_subparsers(dest="aimodels_command", required=True)
    _add_validate(sub)
    _add_plan(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
