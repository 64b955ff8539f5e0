"""`runner-sdk` (also `python -m runner_sdk`): serve, demo, synth, download, import-weights, conformance, bench,
aimodels. Every setting error is one line naming the setting, the value and what is allowed, and exit 2."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import cli_tools, logs
from .pipelines import names
from .settings import FALSE_WORDS, TRUE_WORDS, RunnerSettings, SettingError, load_settings

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
    "--on-preflight-failure": ("on_preflight_failure", "error (serve /health ERROR with the reason, the default) "
                                                       "or exit (exit 1 before binding) (RUNNER_ON_PREFLIGHT_FAILURE)"),
}
# Boolean flags take exactly these words (case-insensitive); anything else is an error, never silently false.
# SFAST/DEEPCACHE as env vars keep go-livepeer's semantics instead: "true" is on, anything else off.
FLAG_WORDS = {"sfast": {"true", "false"}, "deepcache": {"true", "false"},
              "bfloat16": (TRUE_WORDS | FALSE_WORDS) - {""}, "warmup": (TRUE_WORDS | FALSE_WORDS) - {""}}


def _add_serve_flags(p: argparse.ArgumentParser) -> None:
    for flag, (_field, help_text) in SERVE_FLAGS.items():
        p.add_argument(flag, dest=_field, default=None, help=help_text)
    p.add_argument("--verbose", action="store_true", help="debug logging (VERBOSE_LOGGING=1)")
    p.add_argument("--runner", default=os.environ.get("RUNNER_CLASS"),
                   help="custom runner class module:Class (RUNNER_CLASS)")


def settings_from(args: argparse.Namespace) -> RunnerSettings:
    """Env first, flags override. The token only comes from the environment (never from argv/ps).

    Args:
        args: the parsed `serve` flags.
    Returns:
        The settings.
    Raises:
        SettingError: a flag or env var with a value it cannot take (a boolean flag: only its words).
    """
    overrides = {f: getattr(args, f) for _flag, (f, _h) in SERVE_FLAGS.items() if getattr(args, f, None) is not None}
    for flag, (field, _h) in SERVE_FLAGS.items():
        value = overrides.get(field)
        if field in FLAG_WORDS and value is not None and value.strip().lower() not in FLAG_WORDS[field]:
            raise SettingError(flag, value, " or ".join(sorted(FLAG_WORDS[field], key=lambda w: (len(w), w))))
    if getattr(args, "verbose", False):
        overrides["verbose_logging"] = "1"
    return load_settings(**overrides)


def runner_class_for(pipeline: str, runner_spec: str | None) -> type:
    """The runner class to serve, every mistake a SettingError.

    Args:
        pipeline: PIPELINE. runner_spec: RUNNER_CLASS / --runner (`module:Class`) or None.
    Returns:
        The Runner subclass.
    Raises:
        SettingError: an unknown pipeline, a `module:Class` that cannot be imported or is no Runner.
    """
    from .pipelines import UnknownPipeline, runner_class

    if runner_spec and os.getcwd() not in sys.path and "" not in sys.path:
        # A custom `module:Class` is looked up from the current folder, as uvicorn does for its app.
        sys.path.insert(0, os.getcwd())
    if runner_spec and ":" not in runner_spec:
        raise SettingError("RUNNER_CLASS / --runner", runner_spec, "module:Class (the class name is missing)")
    try:
        return runner_class(pipeline, runner_spec)
    except (ImportError, AttributeError, UnknownPipeline) as exc:
        if runner_spec:
            raise SettingError("RUNNER_CLASS / --runner", runner_spec,
                               f"module:Class naming a runner_sdk.Runner subclass ({type(exc).__name__}: {exc})"
                               ) from None
        raise SettingError("PIPELINE / --pipeline", pipeline, f"{', '.join(names(served_only=True))}, or any "
                           "pipeline of the table with RUNNER_CLASS") from None


def cmd_serve(args: argparse.Namespace) -> int:
    """Check the settings and the environment (`preflight`), then serve until SIGTERM.

    Returns:
        0 after a clean shutdown; 1 when a preflight check fails under RUNNER_ON_PREFLIGHT_FAILURE=exit;
        2 when PIPELINE or MODEL_ID is empty.
    Raises:
        SettingError: an invalid setting, runner class, or a PIPELINE its route does not serve (main: exit 2).
    """
    import uvicorn

    from . import preflight
    from .app import create_app
    from .parsing import HEADER_CAP

    settings = settings_from(args)
    logs.setup(settings.verbose_logging)
    log = logging.getLogger("runner_sdk")
    if not settings.pipeline or not settings.model_id:
        log.error("PIPELINE and MODEL_ID must both be set")
        return 2
    cls = runner_class_for(settings.pipeline, args.runner)
    mismatch = preflight.route_problem(cls, settings.pipeline)
    if mismatch is not None:
        raise SettingError("PIPELINE / --pipeline", settings.pipeline, f"the runner's own pipeline: {mismatch}")
    log.debug("settings: %s", settings.public_dict())
    problems = preflight.environment_problems(cls, settings)
    for problem in problems:
        log.error("preflight: %s", problem)
    if problems and settings.on_preflight_failure == "exit":
        return 1
    app = create_app(cls, settings, "; ".join(problems) or None)
    # Graceful shutdown under go-livepeer's 8 s SIGTERM grace period: in-flight requests get 6 s to drain.
    uvicorn.run(app, host=settings.host, port=int(settings.port), timeout_graceful_shutdown=6,
                log_level="debug" if settings.verbose_logging else "info", log_config=logs.uvicorn_log_config(),
                **HEADER_CAP)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `runner-sdk` parser: `serve` here, the other subcommands from `cli_tools` and `aimodels`."""
    parser = argparse.ArgumentParser(prog="runner-sdk", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="serve one runner (settings from env vars, overridden by flags)")
    _add_serve_flags(p)
    p.set_defaults(func=cmd_serve)
    cli_tools.add_subcommands(sub)

    from .aimodels.cli import add_subcommands as add_aimodels

    add_aimodels(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand.

    Returns:
        Its exit status; 2 with one line on stderr for a setting error.
    """
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SettingError as exc:
        print(f"runner-sdk {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
