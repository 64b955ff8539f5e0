"""The GPU check's driver (check.sh runs it): the sections of sections.py in order, each started only when its
expected cost fits the time left (else listed as skipped), results written after every section so a run cut
short still leaves its figures.

    python benchmarks/gpu/gpu_check.py --out gpu-out --pipelines-file .whl/part1/pipelines.txt   # on the GPU
    python benchmarks/gpu/gpu_check.py --scale tiny --device cpu --strict ...                     # rehearsal

Writes into --out (at most 8 files come back from the GPU host, at most 2 folders down): results.json (what
`runner-sdk aimodels plan` reads), results.md (the runner's figures beside each naive baseline, the
correctness tests, what was skipped), raw.json, check.json (each section: status, seconds, figures),
throughput.png, vram.png, and details.tar.gz (every log and sub-report; details/ is removed once packed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tarfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sections import Context, Section, all_sections  # noqa: E402

FULL_BUDGET_S = 540.0  # the 9 minutes on one H100/H200, for every served pipeline in one command


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("gpu-out"))
    parser.add_argument("--scale", choices=["tiny", "full"], default="full")
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--requests", type=int, default=None, help="requests per client (default 3 full, 1 tiny)")
    parser.add_argument("--pipelines-file", type=Path, default=None,
                        help="pipelines this command checks (prepare.py's partN/pipelines.txt); default: all")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="seconds for the whole check (default: 540 s shared by the parts in proportion)")
    parser.add_argument("--tests-slice-s", type=float, default=200.0,
                        help="the most the correctness tests may take (each skips itself past it)")
    parser.add_argument("--tests-k", default="", help="pytest -k expression: which correctness tests run "
                                                        "(e.g. sfast, for a rerun of what a first run skipped)")
    parser.add_argument("--only", default="", help="comma-separated section names (as listed), e.g. to rerun "
                                                   "what a first run skipped")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 on any failed or skipped section and any served pipeline missing from "
                             "results.json (the rehearsal)")
    return parser.parse_args(argv)


def choose(pipelines: list[str], only: str) -> list[Section]:
    """The sections of this command: those whose pipelines are all in it (the tests run in every part)."""
    wanted = {s.strip() for s in only.split(",") if s.strip()}
    chosen = [s for s in all_sections() if set(s.pipelines) <= set(pipelines)]
    if wanted:
        unknown = wanted - {s.name for s in chosen}
        if unknown:
            raise SystemExit(f"--only: no such section in this part: {sorted(unknown)}")
        chosen = [s for s in chosen if s.name in wanted]
    return chosen


def default_budget(sections: list[Section], scale: str) -> float:
    """540 s times this command's share of all sections' expected cost (one command: all of it)."""
    every = sum(s.cost_s[scale] for s in all_sections())
    return FULL_BUDGET_S * sum(s.cost_s[scale] for s in sections) / every


def run_sections(ctx: Context, sections: list[Section], scale: str, on_done=None) -> dict[str, dict]:
    """Run each section in order unless its expected cost passes the time left (then `skipped`).

    Returns:
        {section name: {"status": "ok"|"failed"|"skipped", "seconds": s, "result"|"error"|"reason": ...}}.
    """
    done: dict[str, dict] = {}
    for section in sections:
        need, left = section.cost_s[scale], ctx.left()
        if need > left:
            done[section.name] = {"status": "skipped", "reason": f"needs ~{need:.0f} s, {max(0, left):.0f} s left"}
            print(f"SKIP {section.name}: {done[section.name]['reason']}", flush=True)
        else:
            print(f"START {section.name} ({left:.0f} s left, expects ~{need:.0f} s)", flush=True)
            t0 = time.monotonic()
            try:
                done[section.name] = {"status": "ok", "result": section.run(ctx)}
            except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others' figures
                done[section.name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:3000]}
                (ctx.details / f"{section.name.split()[-1]}-traceback.txt").write_text(traceback.format_exc())
            done[section.name]["seconds"] = round(time.monotonic() - t0, 1)
            print(f"{done[section.name]['status'].upper()} {section.name} in {done[section.name]['seconds']} s"
                  + (f": {done[section.name]['error'][:600]}" if "error" in done[section.name] else ""), flush=True)
        if on_done is not None:
            on_done(done)
    return done


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from runner_sdk.pipelines import served

    every = [p.name for p in served()]
    pipelines = every if args.pipelines_file is None else args.pipelines_file.read_text().split()
    os.environ["GPU_CHECK_PIPELINES"] = ",".join(pipelines)
    sections = choose(pipelines, args.only)
    budget = args.budget_s or default_budget(sections, args.scale)
    args.out.mkdir(parents=True, exist_ok=True)
    synth = Path(os.environ.get("RUNNER_BENCH_SYNTH_DIR") or f"/tmp/gpu-check-models/{args.scale}")
    ctx = Context(out=args.out, scale=args.scale, device=args.device,
                  requests=args.requests or (3 if args.scale == "full" else 1), synth_dir=synth,
                  model_dir=Path(os.environ.get("MODEL_DIR", "/models")), deadline=time.monotonic() + budget,
                  tests_slice_s=args.tests_slice_s, tests_k=args.tests_k)
    print(f"GPU check: {len(sections)} sections for {', '.join(pipelines)}; scale {args.scale}, device "
          f"{args.device}, budget {budget:.0f} s, synthetic weights in {synth}", flush=True)
    from check_report import summary_lines, write_results

    started = time.monotonic()

    def save(done: dict[str, dict]) -> None:  # after every section: a run cut short keeps what it measured
        write_results(ctx, done, pipelines, started)
        pack(ctx)

    watchdog(ctx, budget)
    done = run_sections(ctx, sections, args.scale, on_done=save)
    save(done)
    shutil.rmtree(ctx.details, ignore_errors=True)
    lines, problems = summary_lines(ctx, done, pipelines, strict=args.strict)
    print("\n".join(lines), flush=True)
    if problems and args.strict:
        print("GPU CHECK FAILED:\n  " + "\n  ".join(problems), file=sys.stderr, flush=True)
        return 1
    return 1 if any(d["status"] == "failed" for d in done.values()) else 0


def pack(ctx: Context) -> None:
    """The logs and sub-reports into one details.tar.gz in --out (only 8 files come back from the GPU host)."""
    partial = ctx.out / "details.tar.gz.partial"
    with tarfile.open(partial, "w:gz") as tar:
        tar.add(ctx.details, arcname="details")
    partial.replace(ctx.out / "details.tar.gz")


def watchdog(ctx: Context, budget: float, grace_s: float = 20.0) -> None:
    """Past the deadline plus `grace_s` (a section that outran its estimate), exit with what was written after
    the last finished section, before the device's command limit kills everything (and the output with it)."""
    import threading

    def fire() -> None:
        print(f"GPU check: {budget:.0f} s budget passed by {grace_s:.0f} s inside a section; exiting with the "
              "results of the sections that finished (results.json, results.md, details.tar.gz)", flush=True)
        os._exit(3)

    timer = threading.Timer(max(1.0, ctx.left() + grace_s), fire)
    timer.daemon = True
    timer.start()


if __name__ == "__main__":
    sys.exit(main())
