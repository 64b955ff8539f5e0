"""runner_sdk: build AI runner containers for the Livepeer network (the go-livepeer ai-runner contract)."""

from . import pipelines, routes, schemas
from .app import create_app
from .errors import BadRequest, InsufficientCapacity, JobCancelled, RunnerError
from .host import NotReady
from .options import OptionsError, RunnerOptions
from .pipelines import PIPELINES, Pipeline
from .routes import Route
from .runner import Job, LoadContext, Runner
from .settings import RunnerSettings
from .uploads import UploadedFile

__all__ = [
    "PIPELINES", "BadRequest", "InsufficientCapacity", "Job", "JobCancelled", "LoadContext", "NotReady",
    "OptionsError", "Pipeline", "Route", "Runner", "RunnerError", "RunnerOptions", "RunnerSettings",
    "UploadedFile", "create_app", "pipelines", "routes", "schemas",
]
