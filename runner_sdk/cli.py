"""`runner-sdk` (also `python -m runner_sdk`): serve, demo, synth, download, bench, aimodels."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .pipelines import names
from .settings import RunnerSettings

SERVE_FLAGS = {
    # flag: (settings field, help)
    "--pipeline": ("pipeline", "PIPELINE: text-to-image, audio-to-text or llm"),
    "--model-id": ("model_id", "MODEL_ID: Hugging Face id or a local directory"),
    "--model-dir": ("model_dir", "MODEL_DIR: Hugging Face cache root"),
    "--device": ("device", "auto, cpu, cuda or cuda:N (RUNNER_DEVICE)"),
    "--capacity": ("capacity", "concurrent executions (RUNNER_CAPACITY)"),
    "--queue-size": ("queue_size", "waiting requests before 'insufficient capacity' (RUNNER_QUEUE_SIZE)"),
    "--load-wait-s": ("load_wait_s", "how long a request waits for a loading model (RUNNER_LOAD_WAIT_S)"),
    "--host": ("host", "HOST"),
    "--port": ("port", "PORT"),
    "--version": ("version", "VERSION reported by /version"),
    "--sfast": ("sfast", "SFAST: true or false"),
    "--deepcache": ("deepcache", "DEEPCACHE: true or false"),
    "--bfloat16": ("bfloat16", "BFLOAT16: true or false"),
    "--warmup": ("warmup", "warm up before ready (RUNNER_WARMUP): true or false"),
}


def _add_serve_flags(p: argparse.ArgumentParser) -> None:
    for flag, (_field, help_text) in SERVE_FLAGS.items():
        p.add_argument(flag, dest=_field, default=None, help=help_text)
    p.add_argument("--verbose", action="store_true", help="debug logging (VERBOSE_LOGGING=1)")
    p.add_argument("--runner", default=os.environ.get("RUNNER_CLASS"),
                   help="custom runner class module:Class (RUNNER_CLASS)")


def settings_from(args: argparse.Namespace) -> RunnerSettings:
    """Env first, flags override. The token only comes from the environment (never from argv/ps)."""
    overrides = {f: getattr(args, f) for _flag, (f, _h) in SERVE_FLAGS.items() if getattr(args, f, None) is not None}
    if getattr(args, "verbose", False):
        overrides["verbose_logging"] = "1"
    return RunnerSettings(**overrides)


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app
    from .pipelines import UnknownPipeline, runner_class

    settings = settings_from(args)
    _logging(settings.verbose_logging)
    log = logging.getLogger("runner_sdk")
    if not settings.pipeline or not settings.model_id:
        log.error("PIPELINE and MODEL_ID must both be set")
        return 2
    if args.runner and os.getcwd() not in sys.path and "" not in sys.path:
        # A custom `module:Class` is looked up from the current folder, as uvicorn does for its app.
        sys.path.insert(0, os.getcwd())
    try:
        cls = runner_class(settings.pipeline, args.runner)
    except (UnknownPipeline, ImportError) as exc:
        log.error("cannot serve pipeline %r: %s", settings.pipeline, exc)
        return 2
    log.debug("settings: %s", settings.public_dict())
    app = create_app(cls, settings)
    # Graceful shutdown under go-livepeer's 8 s SIGTERM grace period: in-flight requests get 6 s to drain.
    uvicorn.run(app, host=settings.host, port=int(settings.port), timeout_graceful_shutdown=6,
                log_level="debug" if settings.verbose_logging else "info")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from .pipelines import PIPELINES, load_object

    _logging(False)
    row = PIPELINES.get(args.pipeline)
    if row is None or row.synth is None:
        print(f"no synthetic builder for pipeline {args.pipeline!r}", file=sys.stderr)
        return 2
    path = load_object(row.synth)(args.model_id, Path(args.model_dir), args.scale)
    print(f"wrote synthetic {args.scale} {args.model_id} into {path}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from .pipelines import runner_class
    from .resolve import resolve_snapshot

    _logging(False)
    cls = runner_class(args.pipeline, args.runner)
    for repo_id, patterns in cls.download_plan(args.model_id):
        path = resolve_snapshot(repo_id, Path(args.model_dir), patterns, download=True)
        print(f"{repo_id}: {path}")
    return 0


DEMO_CURL = {
    "text-to-image": """curl -s -X POST {url}/text-to-image -H 'Content-Type: application/json' """
                     """-d '{{"prompt":"a lighthouse at dusk","width":64,"height":64,"seed":7}}' | head -c 300; echo""",
    "audio-to-text": """curl -s -X POST {url}/audio-to-text -F audio=@some.wav""",
    "llm": """curl -s -X POST {url}/llm -H 'Content-Type: application/json' """
           """-d '{{"messages":[{{"role":"user","content":"hi"}}],"max_tokens":8}}'""",
}


def cmd_demo(args: argparse.Namespace) -> int:
    """Synthesize a tiny model (once) and serve it on the CPU: the README's main job."""
    from .pipelines import PIPELINES, runner_class, synthesize
    from .resolve import cache_folder

    _logging(False)
    model_dir = Path(args.model_dir).resolve()
    model_id = args.model_id or PIPELINES[args.pipeline].demo_model_id
    # Every repo the runner reads (SDXL-Lightning is two: the base and the Lightning UNets), so a second
    # `make demo` serves at once instead of synthesizing again.
    repos = [repo for repo, _files in runner_class(args.pipeline).download_plan(model_id)]
    if not all(cache_folder(model_dir, repo).exists() for repo in repos):
        synthesize(args.pipeline, model_id, model_dir, "tiny")
    if args.pipeline == "audio-to-text":
        # Random weights never emit end-of-text: bound the tokens per chunk so a demo request is quick.
        os.environ.setdefault("WHISPER_MAX_NEW_TOKENS", "8")
    os.environ["HF_HUB_OFFLINE"] = "1"
    url = f"http://127.0.0.1:{args.port}"
    print(f"\nServing tiny synthetic {model_id} ({args.pipeline}) on the CPU. Try:\n\n"
          f"  curl -s {url}/health\n  {DEMO_CURL[args.pipeline].format(url=url)}\n", flush=True)
    ns = argparse.Namespace(**{f: None for _flag, (f, _h) in SERVE_FLAGS.items()}, verbose=False, runner=None)
    ns.pipeline, ns.model_id, ns.model_dir, ns.device = args.pipeline, model_id, str(model_dir), "cpu"
    ns.host, ns.port = "127.0.0.1", str(args.port)
    return cmd_serve(ns)


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench.measure import ServerFailed
    from .bench.run import run_bench

    _logging(False)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would drown the progress bars
    pipelines = args.pipeline or list(names(served_only=True))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runner-sdk", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="serve one runner (settings from env vars, overridden by flags)")
    _add_serve_flags(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="serve a tiny synthetic model on the CPU")
    p.add_argument("--pipeline", default="text-to-image", choices=sorted(DEMO_CURL))
    p.add_argument("--model-id", default=None)
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
    p.add_argument("--model-dir", default=os.environ.get("MODEL_DIR", os.path.expanduser("~/.lpData/models")))
    p.add_argument("--runner", default=None)
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("bench", help="measure runners on this host (each measurement in a fresh process)")
    p.add_argument("--pipeline", action="append", choices=names(served_only=True),
                   help="repeat to choose several (default: every served pipeline)")
    p.add_argument("--model", action="append", default=[], metavar="PIPELINE=MODEL_ID",
                   help="model to measure for a pipeline (default: the reference model)")
    p.add_argument("--scale", choices=["tiny", "full"], default="full",
                   help="synthetic weights to use when MODEL_DIR does not hold the real ones")
    p.add_argument("--model-dir", default=os.environ.get("MODEL_DIR", os.path.expanduser("~/.lpData/models")))
    p.add_argument("--device", default="auto")
    p.add_argument("--max-capacity", type=int, default=2)
    p.add_argument("--requests", type=int, default=8, help="requests per capacity slot")
    p.add_argument("--out", default="bench-results")
    p.set_defaults(func=cmd_bench)

    from .aimodels.cli import add_subcommands as add_aimodels

    add_aimodels(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
