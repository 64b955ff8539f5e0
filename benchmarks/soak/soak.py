"""Soak: hold one served runner at capacity + queue (+1 client, so load shedding happens) for N seconds and
report what the CI load test asserts, over a longer run: requests served, statuses seen, /health p50/p99,
resident memory after warm-up and at the end, and the counters once the load stops.

    python benchmarks/soak/soak.py --pipeline text-to-image --seconds 60 \\
        --out benchmarks/results/soak/text-to-image-cpu.md

The runner is `runner-sdk serve` in its own process with the tiny synthetic model (or `--fake` for the SDK's
fake runner of that pipeline), AUTH_TOKEN set, on 127.0.0.1. `--model-dir` reuses a synthesized MODEL_DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from benchmarks.soak.loadgen import run_load  # noqa: E402
from benchmarks.soak.targets import TARGETS, ServedProcess, unavailable  # noqa: E402
from runner_sdk.hardware import cpu_name  # noqa: E402

TOKEN = "soak-token-never-logged"


def machine() -> str:
    return f"{os.cpu_count()}-core {platform.machine()} CPU ({cpu_name()}), no GPU, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pipeline", required=True, choices=["text-to-image", "audio-to-text", "llm"])
    p.add_argument("--fake", action="store_true", help="serve the SDK's fake runner of the pipeline")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--capacity", type=int, default=2)
    p.add_argument("--queue-size", type=int, default=2)
    p.add_argument("--model-dir", default=None, help="a MODEL_DIR that already holds the tiny model")
    p.add_argument("--out", default=None, help="write a Markdown report here")
    args = p.parse_args(argv)

    fakes = {"text-to-image": "fake-image", "audio-to-text": "fake-audio", "llm": "fake-llm"}
    target = TARGETS[fakes[args.pipeline] if args.fake else args.pipeline]
    why = unavailable(target)
    if why:
        print(why, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model_dir or tmp)
        if target.real and not args.model_dir:
            t0 = time.perf_counter()
            target.synthesize(model_dir)
            print(f"synthesized tiny {target.model_id} in {time.perf_counter() - t0:.1f} s", flush=True)
        clients = args.capacity + args.queue_size + 1
        with ServedProcess(target, model_dir, capacity=args.capacity, queue_size=args.queue_size,
                           extra_env={"AUTH_TOKEN": TOKEN}) as served:
            rss_loaded = served.rss()
            report = asyncio.run(run_load(served.url, target, args.seconds, clients,
                                          headers={"Authorization": f"Bearer {TOKEN}"}, rss=served.rss))
            token_in_log = TOKEN in served.log()
    summary = report.summary()
    summary["rss_after_load_mib"] = round(rss_loaded / 2**20, 1)
    summary["token_in_log"] = token_in_log
    summary["problems_sample"] = report.problems[:5]
    summary["transport_errors_sample"] = report.transport_errors[:5]
    print(json.dumps(summary, indent=2))
    if args.out:
        write_report(Path(args.out), target, args, summary)
    ok = (not report.problems and not report.transport_errors and report.in_flight_end == 0
          and report.queued_end == 0 and not token_in_log)
    return 0 if ok else 1


def write_report(path: Path, target, args, s: dict) -> None:
    served = s["statuses"].get(200, 0)
    shed = s["statuses"].get(500, 0)
    growth = None if s["rss_end_mib"] is None else round(s["rss_end_mib"] - s["rss_start_mib"], 1)
    kind = "SDK fake runner" if not target.real else f"reference runner, tiny synthetic `{target.model_id}`"
    lines = [
        f"# Soak: {target.pipeline} ({kind})",
        "",
        f"- Machine: {machine()}",
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- Command: `python benchmarks/soak/soak.py --pipeline {target.pipeline}"
        f"{' --fake' if not target.real else ''} --seconds {args.seconds:g} --out {path}`",
        f"- Runner: `runner-sdk serve` subprocess, device cpu, capacity {args.capacity}, queue {args.queue_size}, "
        f"AUTH_TOKEN set; {s['clients']} concurrent clients (capacity + queue + 1) for {s['seconds']} s; "
        "/health polled every 20 ms on its own connection.",
        "",
        "| Figure | Value |",
        "|---|---|",
        f"| Requests answered | {s['requests']} |",
        f"| Served (200) | {served} |",
        f"| Shed (500 `insufficient capacity`) | {shed} |",
        f"| Statuses seen | {', '.join(f'{k}: {v}' for k, v in s['statuses'].items())} |",
        f"| Answers outside the contract | {s['problems']} |",
        f"| Transport errors | {s['transport_errors']} |",
        f"| /health polls | {s['health_polls']} ({', '.join(f'{k}: {v}' for k, v in s['health_statuses'].items())}) |",
        f"| /health p50 / p99 / max | {s['health_p50_ms']} / {s['health_p99_ms']} / {s['health_max_ms']} ms |",
        f"| RSS after load, after warm-up batch, at end | {s['rss_after_load_mib']} / {s['rss_start_mib']} / "
        f"{s['rss_end_mib']} MiB |",
        f"| RSS growth across the run | {growth} MiB |",
        f"| In flight / queued after the run | {s['in_flight_end']} / {s['queued_end']} |",
        f"| Token in the runner's log | {'yes' if s['token_in_log'] else 'no'} |",
        "",
    ]
    if target.real and target.env:
        lines += [f"Runner env for the tiny model: `{' '.join(f'{k}={v}' for k, v in target.env.items())}`.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
