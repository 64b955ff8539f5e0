"""The pieces of cpu_backends.py: the `generate` baseline, the served backends (processes and their SSE
clients), the prompts, the load generator and the report."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import torch

ROOT = Path(__file__).resolve().parents[2]
STORY = ("Write a long, detailed story about a dragon called {name} who learns to cook for the village, "
         "with dialogue, a recipe and a surprising ending. ")
NAMES = ["Ember", "Quill", "Moss", "Cinder", "Pebble", "Saffron", "Thistle", "Juniper"]


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, with its family and model numbers (a VM often shows only a brand)."""
    import platform

    fields: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    if "model name" not in fields:
        return platform.machine()
    return f"{fields['model name']} (cpu family {fields.get('cpu family')}, model {fields.get('model')})"


def make_prompts(tokenizer, count: int, tokens: int, tag: str = "") -> list[list[dict]]:
    """`count` different chat requests whose templated prompts are about `tokens` tokens long. `tag` starts
    every message, so each round asks something new (vLLM's prefix cache would otherwise skip the prefill of
    a prompt it has seen)."""
    from runners.llm.prompt import prompt_ids

    prompts = []
    for i in range(count):
        words = (tag + STORY.format(name=NAMES[i % len(NAMES)]) * 40).split(" ")
        lo, hi = 1, len(words)
        while lo < hi:  # the most words whose templated prompt still fits in `tokens`
            mid = (lo + hi + 1) // 2
            n = len(prompt_ids(tokenizer, [{"role": "user", "content": " ".join(words[:mid])}]))
            lo, hi = (mid, hi) if n <= tokens else (lo, mid - 1)
        prompts.append([{"role": "user", "content": " ".join(words[:lo])}])
    return prompts


class _Steps:
    """A stopping criterion that never stops: it records when each new token was chosen."""

    def __init__(self):
        self.times: list[float] = []

    def __call__(self, input_ids, scores, **kwargs):
        self.times.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class GenerateBaseline:
    """Plain transformers `generate` in this process, on the same weights the servers read."""

    def __init__(self, snapshot: Path):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(snapshot)
        self.tokenizer.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(snapshot, dtype=torch.float32,
                                                          attn_implementation="sdpa").eval()
        self.reference: dict[str, str] = {}  # prompt (as JSON) -> its greedy text alone

    def ids(self, prompts) -> list[list[int]]:
        from runners.llm.prompt import prompt_ids

        return [prompt_ids(self.tokenizer, p) for p in prompts]

    def _generate(self, ids: list[list[int]], new_tokens: int):
        width = max(map(len, ids))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids])
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
        steps = _Steps()
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=new_tokens,
                                      do_sample=False, stopping_criteria=[steps], pad_token_id=pad)
        wall = time.perf_counter() - t0
        return out[:, width:], steps.times, t0, wall

    def _texts(self, out) -> tuple[list[str], int]:
        eos = set(self.model.generation_config.eos_token_id if isinstance(
            self.model.generation_config.eos_token_id, list) else [self.model.generation_config.eos_token_id])
        texts, total = [], 0
        for row in out.tolist():
            end = next((i + 1 for i, t in enumerate(row) if t in eos), len(row))
            total += end
            texts.append(self.tokenizer.decode(row[:end], skip_special_tokens=True))
        return texts, total

    def add_reference(self, prompts, new_tokens: int) -> None:
        """Greedy text of each prompt alone: what every served stream must say."""
        for p, ids in zip(prompts, self.ids(prompts), strict=True):
            self.reference[json.dumps(p)] = self._texts(self._generate([ids], new_tokens)[0])[0][0]

    def exact(self, prompts, texts: list[str]) -> int:
        """How many of `texts` equal their prompt's reference."""
        return sum(self.reference[json.dumps(p)] == t for p, t in zip(prompts, texts, strict=True))

    def run(self, prompts, new_tokens: int) -> dict:
        out, times, t0, wall = self._generate(self.ids(prompts), new_tokens)
        texts, total = self._texts(out)
        decode = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        return dict(decode_tps=decode, aggregate_tps=total / wall, ttft_ms=(times[0] - t0) * 1000,
                    ttft_max_ms=(times[0] - t0) * 1000, tokens=total, texts=texts)


class Served:
    """A server process: a runner (`runner-sdk serve`) or vLLM's own OpenAI server."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], port: int, log: Path):
        self.name, self.port, self.url = name, port, f"http://127.0.0.1:{port}"
        self.log = log
        self.upstream: Served | None = None
        self.info: dict = {}
        self.proc = subprocess.Popen(cmd, env={**os.environ, **env}, cwd=ROOT, stdout=log.open("w"),
                                     stderr=subprocess.STDOUT, start_new_session=True)

    @classmethod
    def runner(cls, name: str, env: dict[str, str], logs: Path) -> Served:
        from runner_sdk.testing import free_port

        port = free_port()
        return cls(name, [sys.executable, "-m", "runner_sdk", "serve"], dict(env, PORT=str(port)), port,
                   logs / f"{name}.log")

    @classmethod
    def upstream_vllm(cls, snapshot: Path, env: dict[str, str], logs: Path) -> Served:
        from runner_sdk.testing import free_port
        from runners.llm.import_gguf import SMOLLM2_ID

        port = free_port()
        cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(snapshot),
               "--served-model-name", SMOLLM2_ID, "--dtype", "float32", "--enforce-eager", "--host", "127.0.0.1",
               "--port", str(port), "--max-model-len", env["MAX_MODEL_LEN"],
               "--max-num-seqs", env["RUNNER_CAPACITY"], "--enable-prefix-caching"]
        return cls("vllm-openai-server", cmd, {"VLLM_CPU_KVCACHE_SPACE": env["VLLM_CPU_KVCACHE_SPACE"]}, port,
                   logs / "vllm-openai-server.log")

    def wait_ready(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); see {self.log}")
            with contextlib.suppress(httpx.HTTPError):
                r = httpx.get(self.url + path, timeout=5)
                if r.status_code == 200 and (path != "/health" or r.json().get("status") == "IDLE"):
                    if path == "/health":
                        self.info = httpx.get(self.url + "/runner/info", timeout=5).json()
                    return
            time.sleep(1)
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s; see {self.log}")

    def stop(self) -> None:
        """SIGTERM to the server's whole process group (its own session): vLLM's engine-core and worker
        processes outlived a terminated parent when only the parent was signalled."""
        for proc in ([self.proc] + ([self.upstream.proc] if self.upstream else [])):
            for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 5)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(wait)
                    break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # children still left in the group


def _stream(url: str, messages, new_tokens: int, out: dict) -> None:
    from runners.llm.import_gguf import SMOLLM2_ID

    body = dict(messages=messages, model=SMOLLM2_ID, temperature=0, max_tokens=new_tokens, stream=True)
    times, counts, text = [], [], []
    t0 = time.perf_counter()
    with httpx.stream("POST", url + "/llm", json=body, timeout=600) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            completion = chunk["usage"]["completion_tokens"]
            text.append(chunk["choices"][0]["delta"]["content"] or "")
            if completion and (not counts or completion > counts[-1]):
                times.append(time.perf_counter())
                counts.append(completion)
    out.update(t0=t0, times=times, counts=counts, text="".join(text))


def stream_batch(url: str, prompts, new_tokens: int) -> dict:
    """All prompts streamed at once, one client thread each; rates as in cpu_backends.py's docstring."""
    results = [{} for _ in prompts]
    threads = [threading.Thread(target=_stream, args=(url, p, new_tokens, res)) for p, res in zip(prompts, results,
                                                                                                    strict=True)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if any("times" not in r or not r["times"] for r in results):
        raise RuntimeError(f"a stream from {url} failed")
    decode = [(r["counts"][-1] - r["counts"][0]) / (r["times"][-1] - r["times"][0]) for r in results
              if r["times"][-1] > r["times"][0]]
    ttft = [(r["times"][0] - r["t0"]) * 1000 for r in results]
    total = sum(r["counts"][-1] for r in results)
    return dict(decode_tps=sum(decode) / len(decode) if decode else 0.0, aggregate_tps=total / wall,
                ttft_ms=sum(ttft) / len(ttft), ttft_max_ms=max(ttft), tokens=total,
                texts=[r["text"] for r in results])


@contextlib.contextmanager
def load_generator(processes: int):
    """`processes` busy loops in their own processes while the block runs (0: none).

    Each in a session of its own, as the servers are: with the kernel's autogroup scheduling (on in most
    distributions), CPU time is shared between sessions first, so busy loops in this process's session
    would starve only the `generate` baseline and the clients, and leave the servers alone."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
             for _ in range(processes)]
    try:
        if procs:
            time.sleep(5)  # let the load average start to show them
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def render_markdown(report: dict) -> str:
    m, s = report["machine"], report["settings"]
    lines = [
        "# LLM backends on the CPU: SmolLM2-135M-Instruct (real weights), served over HTTP vs plain `generate`",
        "",
        f"Machine: {m['cores']}-core VM, {m['cpu']}; Python {m['python']}, torch {m['torch']}. "
        f"`generate` baseline with {m['generate_threads']} torch thread(s), in the benchmark's process.",
        f"Prompts: {min(s['prompt_tokens'])}-{max(s['prompt_tokens'])} templated tokens, up to {s['new_tokens']} new "
        f"tokens, greedy; {s['rounds']} interleaved rounds per phase; load phases (busy-loop processes): "
        f"{s['load_phases']}. Figures are medians over the rounds; `exact` counts served streams whose text "
        "equals greedy `generate` on that prompt alone.",
        "",
        "| load | backend | streams | decode tok/s per stream | x generate | aggregate tok/s | x generate | "
        "TTFT ms | exact | load average (1 min) per round |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(report["summary"], key=lambda r: (r["phase"], r["streams"], r["backend"] != "generate")):
        lines.append(f"| {r['phase']} busy | {r['backend']} | {r['streams']} | {r['decode_tps']:.1f} | "
                     f"{r['decode_vs_generate']} | {r['aggregate_tps']:.1f} | {r['aggregate_vs_generate']} | "
                     f"{r['ttft_ms']:.0f} | {r['exact']}/{r['of']} | {', '.join(map(str, r['load1']))} |")
    lines += ["", "Backend facts (/runner/info at start):", ""]
    for name, info in report["backend_info"].items():
        lines.append(f"- {name}: `{json.dumps(info, sort_keys=True)}`")
    return "\n".join(lines) + "\n"
