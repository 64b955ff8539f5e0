"""Audio-to-text on one GPU: full-scale synthetic Whisper large-v3, a 10-minute input, one script.

    python benchmarks/audio_to_text/gpu_bench.py [--tokens 128] [--out benchmarks/results/audio_to_text/gpu-<card>.md]

Budget: about 4 to 5 minutes on one H100 (it stops measuring at --deadline-s, 330 s by default, and says what
it skipped). Steps:

1. Synthesize large-v3 at full scale (32 + 32 layers, d_model 1280, 128 mel bins, vocabulary 51866; 1.54 B
   parameters, 3.1 GB fp16) into the HF cache layout under --model-dir, unless it is already there. Real
   weights in --model-dir are used as they are.
2. Cold start: `runner-sdk serve` in a fresh process (the weights' pages are first evicted from the page cache
   with posix_fadvise DONTNEED, which is advisory), timed from spawn to /health IDLE, with the runner's own
   load phases, warm VRAM, then one real /audio-to-text upload of the 10-minute MP3: end-to-end real-time
   factor and the request's peak VRAM.
3. In this process, the runner's transcriber on the same weights: real-time factor and peak VRAM at batch
   1, 8, 16 and 24 (the runner itself sizes the batch from the free memory; the batch is forced here).
4. The naive baseline in the same run: transformers' ASR pipeline, eager attention, batch 16,
   `chunk_length_s=30`, which is what the stock ai-runner does.

Random weights never emit end-of-text, so every 30 s window generates exactly --tokens tokens in both ours
and the baseline (min_new_tokens = max_new_tokens, one decoder pass per window: the baseline gets
`force_unique_generate_call` too, or Whisper's seek loop would decode some windows more than once). Real
speech produces about 100 to 150 tokens per 30 s window; the stock runner stops at 128. Segment timestamps
are on in every measured run (the contract's default).

Targets on an H100 (issue 4): cold start to OK within 2 s, at least 150x real time on 10-minute audio, peak
VRAM at most 6 GB at batch 16. Timings use torch.cuda.synchronize(); peaks use reset_peak_memory_stats()
before each measured run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

MODEL_ID = "openai/whisper-large-v3"
GB = 1e9


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def evict_from_page_cache(folder: Path) -> str:
    """Ask the kernel to drop the cached pages of every weight file (advisory, needs no privileges)."""
    done = 0
    for path in folder.rglob("*.safetensors"):
        real = path.resolve()
        fd = os.open(real, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            done += 1
        finally:
            os.close(fd)
    return f"posix_fadvise(DONTNEED) on {done} weight file(s)"


def gpu_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.startswith("cuda") else f"CPU ({platform.processor() or 'x86_64'})"


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def reset_peak(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def mem(device: str) -> dict[str, float | None]:
    import torch

    if not device.startswith("cuda"):
        return {"allocated_gb": None, "reserved_gb": None}
    return {"allocated_gb": torch.cuda.max_memory_allocated(device) / GB,
            "reserved_gb": torch.cuda.max_memory_reserved(device) / GB}


def gb(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


class Deadline:
    def __init__(self, seconds: float):
        self.t0 = time.monotonic()
        self.seconds = seconds
        self.skipped: list[str] = []

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.t0)

    def allow(self, what: str, needs_s: float) -> bool:
        if self.left() >= needs_s:
            return True
        self.skipped.append(f"{what} (needed ~{needs_s:.0f} s, {max(0.0, self.left()):.0f} s left)")
        return False


def cold_start(args, model_dir: Path, mp3: Path, audio_s: float, report: dict) -> None:
    """A fresh `runner-sdk serve` process: spawn -> IDLE, phases, warm VRAM; then one real upload."""
    import httpx

    report["page_cache"] = evict_from_page_cache(model_dir)
    port = free_port()
    env = dict(os.environ, PIPELINE="audio-to-text", MODEL_ID=MODEL_ID, MODEL_DIR=str(model_dir),
               HF_HUB_OFFLINE="1", WHISPER_MAX_NEW_TOKENS=str(args.tokens), PYTHONPATH=str(ROOT))
    log = open(Path(args.workdir) / "serve.log", "w")  # noqa: SIM115 (closed below)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "runner_sdk", "serve", "--device", args.device, "--host",
                             "127.0.0.1", "--port", str(port)], env=env, cwd=ROOT, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        status, bound = None, None
        while time.perf_counter() - t0 < 180:
            try:
                status = httpx.get(url + "/health", timeout=1).json()["status"]
                bound = bound or time.perf_counter() - t0
            except httpx.HTTPError:
                status = None
            if status in ("IDLE", "OK", "ERROR"):
                break
            time.sleep(0.01)
        ready = time.perf_counter() - t0
        info = httpx.get(url + "/runner/info", timeout=5).json()
        report["cold"] = {"spawn_to_port_s": bound, "spawn_to_ready_s": ready, "status": status,
                          "load": info.get("load"), "warm_vram": info.get("vram", {}).get("warm"),
                          "dtype": info.get("dtype"), "error": info.get("error")}
        if status != "IDLE":
            return
        body = mp3.read_bytes()
        t1 = time.perf_counter()
        r = httpx.post(url + "/audio-to-text", files={"audio": ("audio", body, "application/octet-stream")},
                       data={"return_timestamps": "true"}, timeout=600)
        wall = time.perf_counter() - t1
        info = httpx.get(url + "/runner/info", timeout=5).json()
        report["e2e"] = {"status": r.status_code, "wall_s": wall, "rtf_x": audio_s / wall,
                         "server_timing": r.headers.get("server-timing"),
                         "request_peak_vram": info.get("vram", {}).get("last_request_peak"),
                         "chunks": len(r.json().get("chunks", [])) if r.status_code == 200 else None}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def in_process(args, snapshot: Path, audio, audio_s: float, report: dict, deadline: Deadline) -> None:
    import torch
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor, pipeline

    from runners.audio_to_text.transcribe import WhisperTranscriber, windows

    dev = args.device
    dtype = torch.float16 if dev.startswith("cuda") else torch.float32
    processor = AutoProcessor.from_pretrained(snapshot)
    model = AutoModelForSpeechSeq2Seq.from_pretrained(snapshot, dtype=dtype, attn_implementation="sdpa",
                                                      use_safetensors=True, device_map=dev).eval()
    t = WhisperTranscriber(model, processor, dev, dtype, max_new_tokens=args.tokens, max_batch=24)
    n_windows = len(windows(audio, t.chunk_len, t.stride_len))
    report["windows"] = n_windows
    report["auto_batch"] = t.batch_size_for(n_windows, True, audio_s, args.tokens)
    report["weights_gb"] = torch.cuda.memory_allocated(dev) / GB if dev.startswith("cuda") else None

    # Warm-up: CUDA kernels, cuBLAS handles and allocator for both paths (not measured).
    t.transcribe(audio[: 16_000 * 60], True, batch_size=2, max_new_tokens=8, min_new_tokens=8)
    runs = report.setdefault("ours", {})
    est_step = None
    for bs in args.batches:
        batches = -(-n_windows // bs)
        if est_step is not None and not deadline.allow(f"ours at batch {bs}", batches * args.tokens * est_step + 10):
            continue
        sync(dev)
        reset_peak(dev)
        t0 = time.perf_counter()
        result = t.transcribe(audio, True, batch_size=bs, max_new_tokens=args.tokens, min_new_tokens=args.tokens)
        sync(dev)
        wall = time.perf_counter() - t0
        runs[bs] = {"wall_s": wall, "rtf_x": audio_s / wall, **mem(dev), "batches": batches,
                    "chunks": len(result.chunks)}
        est_step = wall / (batches * args.tokens)  # seconds per decoder step (upper bound; includes encoder)
        print(f"ours batch {bs:2d}: {wall:7.2f} s  {audio_s / wall:6.1f}x  peak {gb(runs[bs]['allocated_gb'])} GB",
              flush=True)

    # Baseline: the stock runner's call, eager attention, batch 16.
    if deadline.allow("baseline (pipeline, eager, batch 16)", 60):
        model.config._attn_implementation = "eager"
        # No `device`: the model is already placed (device_map), and the pipeline refuses to move it.
        pipe = pipeline("automatic-speech-recognition", model=model, tokenizer=processor.tokenizer,
                        feature_extractor=processor.feature_extractor, dtype=dtype)
        kwargs = dict(chunk_length_s=30, batch_size=16, return_timestamps=True, ignore_warning=True,
                      generate_kwargs={"max_new_tokens": args.tokens, "min_new_tokens": args.tokens,
                                       "force_unique_generate_call": True})
        pipe({"raw": audio[: 16_000 * 60].copy(), "sampling_rate": 16_000}, **{**kwargs, "generate_kwargs": {
            "max_new_tokens": 8, "min_new_tokens": 8, "force_unique_generate_call": True}})  # warm-up
        sync(dev)
        reset_peak(dev)
        t0 = time.perf_counter()
        out = pipe({"raw": audio.copy(), "sampling_rate": 16_000}, **kwargs)
        sync(dev)
        wall = time.perf_counter() - t0
        report["baseline"] = {"wall_s": wall, "rtf_x": audio_s / wall, **mem(dev),
                              "chunks": len(out.get("chunks", []))}
        print(f"baseline pipeline eager batch 16: {wall:7.2f} s  {audio_s / wall:6.1f}x", flush=True)
        model.config._attn_implementation = "sdpa"


def render(report: dict, args) -> str:
    r = report
    lines = [
        f"# Audio-to-text on {r['gpu']}: Whisper large-v3 ({r['scale']} scale)",
        "",
        f"- Date: {r['date']}; host: {r['host']}; torch {r['torch']}, transformers {r['transformers']}",
        f"- Weights: {r['weights']}; input: {r['audio_s']:.0f} s speech-like synthetic MP3 "
        f"({r['windows']} windows of 30 s with 5 s overlaps)",
        f"- Tokens per window fixed at {args.tokens} (random weights never emit end-of-text; min = max new "
        "tokens, one decoder pass per window, segment timestamps on) in ours and the baseline alike.",
        f"- Command: `python benchmarks/audio_to_text/gpu_bench.py {' '.join(sys.argv[1:])}`; total script time "
        f"{r['script_s']:.0f} s (synthesis {r.get('synth_s', 0):.0f} s)",
        "",
        "## Cold start (fresh `runner-sdk serve` process)",
        "",
    ]
    cold = r.get("cold")
    if cold:
        lines += [f"- Page cache: {r.get('page_cache')}",
                  f"- Spawn to port bound: {cold['spawn_to_port_s']:.2f} s; spawn to /health IDLE: "
                  f"**{cold['spawn_to_ready_s']:.2f} s** (target 2 s); status {cold['status']}",
                  f"- Runner load phases (s): `{json.dumps((cold.get('load') or {}).get('phases_s'))}`",
                  f"- Warm VRAM after load: `{json.dumps(cold.get('warm_vram'))}`"]
        if cold.get("error"):
            lines.append(f"- ERROR: {cold['error']}")
    e2e = r.get("e2e")
    if e2e:
        lines += [f"- One real upload of the {r['audio_s'] / 60:g}-minute MP3 (decode + transcribe, runner's own batch): "
                  f"{e2e['wall_s']:.2f} s = **{e2e['rtf_x']:.0f}x real time**, status {e2e['status']}",
                  f"- Server-Timing: `{e2e['server_timing']}`",
                  f"- That request's peak VRAM: `{json.dumps(e2e['request_peak_vram'])}`"]
    lines += ["", "## Real-time factor by batch (transcription only, audio already decoded)", "",
              "| Run | Batch | Wall s | x real time | Peak allocated GB | Peak reserved GB |", "|---|---|---|---|---|---|"]
    for bs, run in sorted(r.get("ours", {}).items()):
        lines.append(f"| ours (sdpa, one pass per window) | {bs} | {run['wall_s']:.2f} | {run['rtf_x']:.0f}x | "
                     f"{gb(run['allocated_gb'])} | {gb(run['reserved_gb'])} |")
    b = r.get("baseline")
    if b:
        lines.append(f"| baseline: transformers pipeline, eager | 16 | {b['wall_s']:.2f} | {b['rtf_x']:.0f}x | "
                     f"{gb(b['allocated_gb'])} | {gb(b['reserved_gb'])} |")
        if 16 in r.get("ours", {}):
            lines += ["", f"Ours at batch 16 vs the baseline: {b['wall_s'] / r['ours'][16]['wall_s']:.2f}x faster."]
    lines += ["", f"- Weights alone: {gb(r.get('weights_gb'))} GB allocated; the runner would pick batch "
              f"{r.get('auto_batch')} for this input on this card.",
              "- The decoder's cross-attention keys and values over 1500 encoder positions take 246 MB per window "
              "in fp16 (32 layers x 2 x 1500 x 1280 x 2 B), so 16 windows need about 3.9 GB beside 3.1 GB of "
              "weights: peak VRAM at batch 16 cannot be under about 7 GB with a standard KV cache."]
    if r.get("skipped"):
        lines += ["", "Skipped to stay within the time budget: " + "; ".join(r["skipped"])]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=128, help="tokens generated per 30 s window (fixed)")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[24, 16, 8, 1])
    ap.add_argument("--device", default="cuda:0", help="cuda:N; `cpu` with --scale tiny is a dry run of the script")
    ap.add_argument("--scale", choices=["full", "tiny"], default="full")
    ap.add_argument("--model-dir", type=Path, default=None, help="HF cache root (default: a temp folder per scale)")
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "a2t-gpu-bench")
    ap.add_argument("--deadline-s", type=float, default=330.0)
    ap.add_argument("--skip-cold", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: this benchmark needs a GPU (or --device cpu --scale tiny for a dry run)",
              file=sys.stderr)
        return 2
    if args.model_dir is None:
        args.model_dir = Path(os.environ.get("A2T_BENCH_MODEL_DIR", f"/tmp/a2t-gpu-bench/models-{args.scale}"))
    import transformers
    from decode_bench import speechlike

    from runner_sdk.resolve import ModelNotFound, resolve_snapshot
    from runners.audio_to_text.decode import decode_audio
    from runners.audio_to_text.synth import synthesize
    from runners.audio_to_text.testaudio import encode

    deadline = Deadline(args.deadline_s)
    t_start = time.perf_counter()
    args.workdir.mkdir(parents=True, exist_ok=True)
    report: dict = {"gpu": gpu_name(args.device), "scale": args.scale, "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                    "host": f"{platform.node()} ({os.cpu_count()} CPUs)", "torch": torch.__version__,
                    "transformers": transformers.__version__}
    try:
        snapshot = resolve_snapshot(MODEL_ID, args.model_dir, download=False)
        synthetic = (snapshot / "synthetic.json").exists()
        report["weights"] = "synthetic (already in the model dir)" if synthetic else "real weights from the model dir"
    except ModelNotFound:
        t0 = time.perf_counter()
        snapshot = synthesize(MODEL_ID, args.model_dir, args.scale)
        report["synth_s"] = time.perf_counter() - t0
        report["weights"] = f"synthetic, random weights, {args.scale} scale"
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    print(f"weights: {snapshot}", flush=True)

    audio_s = args.minutes * 60
    mp3 = encode(speechlike(audio_s), 16_000, "mp3", args.workdir / "audio")
    audio = decode_audio(mp3).samples
    report["audio_s"] = audio_s

    if not args.skip_cold:
        cold_start(args, args.model_dir, mp3, audio_s, report)
        print(json.dumps({k: report.get(k) for k in ("cold", "e2e")}, default=str, indent=1), flush=True)
    in_process(args, snapshot, audio, audio_s, report, deadline)
    report["skipped"] = deadline.skipped
    report["script_s"] = time.perf_counter() - t_start
    text = render(report, args)
    print(text)
    out = args.out or ROOT / "benchmarks" / "results" / "audio_to_text" / \
        f"gpu-{report['gpu'].replace(' ', '-')}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    (out.with_suffix(".json")).write_text(json.dumps(report, default=str, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
