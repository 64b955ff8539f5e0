"""runner_sdk: build AI runner containers for the Livepeer network (the go-livepeer ai-runner contract)."""

from . import routes, schemas
from .app import create_app
from .errors import BadRequest, InsufficientCapacity, JobCancelled, RunnerError
from .routes import Route
from .runner import Job, LoadContext, Runner, UploadedFile
from .settings import RunnerSettings

__all__ = [
    "BadRequest", "InsufficientCapacity", "Job", "JobCancelled", "LoadContext", "Route", "Runner",
    "RunnerError", "RunnerSettings", "UploadedFile", "create_app", "routes", "schemas",
]
