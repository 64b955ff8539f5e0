"""Logging for `runner-sdk serve`: our line format, and uvicorn's /health access lines at DEBUG.

go-livepeer polls `/health` every 500 ms at start-up (and every 5 s for managed containers): at INFO those
lines would bury every refusal and error. They are logged at DEBUG, i.e. only with VERBOSE_LOGGING=1.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET_PATHS = ("/health",)


class HealthPollFilter(logging.Filter):
    """A uvicorn access-log filter: a `/health` line becomes DEBUG, dropped unless the access logger is at
    DEBUG (`--verbose`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Returns:
            False to drop a /health line when DEBUG is off; True otherwise (the record relabelled DEBUG).
        """
        args = record.args if isinstance(record.args, tuple) else ()
        path = str(args[2]).split("?", 1)[0].rstrip("/") if len(args) >= 3 else ""
        if path not in QUIET_PATHS:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger("uvicorn.access").isEnabledFor(logging.DEBUG)


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging config with the /health filter on its access log.

    Returns:
        A `logging.config.dictConfig` dict for `uvicorn.run(log_config=...)`.
    """
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"health_polls": {"()": HealthPollFilter}}
    config["handlers"]["access"]["filters"] = ["health_polls"]
    return config


def setup(verbose: bool) -> None:
    """Our loggers at INFO (DEBUG when `verbose`), with a timestamp and the logger name."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=FORMAT)
