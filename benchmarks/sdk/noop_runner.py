"""Runners for the SDK overhead benchmark: a no-op text-to-image runner and a busy one (holds its slot)."""

from __future__ import annotations

import os
import time

from runner_sdk import Job, Runner, routes, schemas

# A 1x1 PNG: the response has the contract's shape, with no encoding work.
PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
         "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


class NoopRunner(Runner):
    route = routes.TEXT_TO_IMAGE

    def predict(self, request: schemas.TextToImageParams, job: Job) -> schemas.ImageResponse:
        with job.stage("runner"):
            return schemas.ImageResponse(images=[schemas.Media(url=PIXEL, seed=request.seed or 0, nsfw=False)])


def _bare_app():
    """The baseline: the same body model and response on a plain FastAPI app (a sync endpoint, so FastAPI
    runs it on its thread pool, as the SDK runs predict off the event loop), with no SDK around it."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/text-to-image")
    def text_to_image(params: schemas.TextToImageParams) -> schemas.ImageResponse:
        return schemas.ImageResponse(images=[schemas.Media(url=PIXEL, seed=params.seed or 0, nsfw=False)])

    @app.get("/health")
    async def health() -> dict:
        return {"status": "IDLE"}

    return app


bare_app = _bare_app()


class BusyRunner(NoopRunner):
    """Holds its slot for BUSY_S seconds in small steps, like a denoising loop (GIL released while sleeping)."""

    def predict(self, request, job):
        end = time.monotonic() + float(os.environ.get("BUSY_S", "30"))
        while time.monotonic() < end:
            job.step()
            time.sleep(0.01)
        return super().predict(request, job)
