"""The runner interface and the pipeline table, served for real: decode -> predict with typed inputs and
uploads, options whose errors name their variable, one reporting surface, the healthy() hook, and one route
per go-livepeer pipeline with the OpenAPI body go-livepeer's client is generated from."""

from __future__ import annotations

import dataclasses
import threading

import httpx
import pytest
from fakes import png_size, tiny_png
from pydantic import Field

from runner_sdk import (
    PIPELINES,
    BadRequest,
    Job,
    LoadContext,
    Runner,
    RunnerOptions,
    UploadedFile,
    pipelines,
    routes,
    schemas,
)
from runner_sdk.testing import RunningServer

# The ten pipelines of go-livepeer's capability table (contract 3.5-3.14).
GO_LIVEPEER_PIPELINES = {"text-to-image", "image-to-image", "image-to-video", "upscale", "audio-to-text",
                         "segment-anything-2", "llm", "image-to-text", "text-to-speech", "live-video-to-video"}
IMAGE_ROUTES = ("image-to-image", "image-to-video", "upscale", "image-to-text", "segment-anything-2")


def test_the_table_has_every_go_livepeer_pipeline_and_its_route():
    assert set(PIPELINES) == GO_LIVEPEER_PIPELINES
    for name, row in PIPELINES.items():
        assert row.path == f"/{name}"
        if row.route is not None:
            assert row.route.path == row.path
            assert row.route.operation_id.startswith("gen")
    assert PIPELINES["live-video-to-video"].route is None  # a stream control call, not a batch route
    assert {n: PIPELINES[n].file_part for n in IMAGE_ROUTES} == dict.fromkeys(IMAGE_ROUTES, "image")
    assert PIPELINES["audio-to-text"].file_part == "audio"
    assert {p.encoding for p in PIPELINES.values() if p.file_part is None} == {"json"}
    # every batch pipeline has a reference runner; the live one is a stream, not served here
    assert set(pipelines.names(served_only=True)) == GO_LIVEPEER_PIPELINES - {"live-video-to-video"}
    assert set(pipelines.names(diffusion=True)) == {"text-to-image", "image-to-image", "image-to-video", "upscale"}
    for row in pipelines.served():
        assert issubclass(pipelines.runner_class(row.name), Runner)
    with pytest.raises(pipelines.UnknownPipeline, match="text-to-image"):
        pipelines.runner_class("live-video-to-video")  # in the table, not served by this build


# --- a small multipart runner on a table route ----------------------------------------------------------


class CaptionOptions(RunnerOptions):
    caption_prefix: str = "an image of"
    caption_max_pixels: int = Field(4096, ge=1)


@dataclasses.dataclass
class Picture:
    upload: UploadedFile
    prompt: str


class CaptionRunner(Runner[schemas.ImageToTextForm, Picture]):
    route = PIPELINES["image-to-text"].route
    Options = CaptionOptions
    decoded_on: list[str] = []
    unhealthy: str | None = None

    def setup(self, ctx: LoadContext) -> None:
        ctx.report(dtype="float32", CAPTION="prefix from CAPTION_PREFIX")
        ctx.note("nothing to load: captions are made from the file's bytes")

    def decode(self, request: schemas.ImageToTextForm) -> Picture:
        type(self).decoded_on.append(threading.current_thread().name)
        width, height = png_size(request.image.read_bytes())
        if width * height > self.options.caption_max_pixels:
            raise BadRequest("image too large for this runner")
        return Picture(request.image, request.prompt)

    def predict(self, inputs: Picture, job: Job) -> schemas.ImageToTextResponse:
        assert isinstance(inputs, Picture) and isinstance(inputs.upload, UploadedFile)
        head = inputs.upload.path.read_bytes()[:4]
        return schemas.ImageToTextResponse(
            text=f"{self.options.caption_prefix} {inputs.upload.size} bytes {head.hex()} {inputs.prompt}".strip())

    def healthy(self) -> str | None:
        return self.unhealthy


@pytest.fixture
def caption_settings(settings):
    return lambda **kw: settings(pipeline="image-to-text", model_id="Salesforce/blip-image-captioning-large", **kw)


def post_image(srv, png: bytes, **data) -> httpx.Response:
    return httpx.post(srv.url + "/image-to-text", files={"image": ("image", png, "image/png")}, data=data)


def test_decode_hands_typed_inputs_and_uploads_to_predict(caption_settings, monkeypatch):
    monkeypatch.setenv("CAPTION_PREFIX", "a picture of")
    cls = type("Caption", (CaptionRunner,), {"decoded_on": []})
    png = tiny_png(8, 8, 3)
    with RunningServer(cls, caption_settings()) as srv:
        r = post_image(srv, png, prompt="a cat")
        assert r.status_code == 200, r.text
        assert r.json() == {"text": f"a picture of {len(png)} bytes {png[:4].hex()} a cat"}
        # the table's route: no period on this route's mismatch message (contract 3.11)
        wrong = post_image(srv, png, model_id="Salesforce/blip-image-captioning-base")
        assert wrong.status_code == 400 and wrong.json()["detail"]["msg"] == (
            "pipeline configured with Salesforce/blip-image-captioning-large but called with "
            "Salesforce/blip-image-captioning-base")
        assert post_image(srv, tiny_png(80, 64, 1)).status_code == 400  # decode's own 400
        assert cls.decoded_on and not any(name.startswith("job") for name in cls.decoded_on)
        info = httpx.get(srv.url + "/runner/info").json()
        assert info["dtype"] == "float32" and info["optimisations_applied"] == {"CAPTION": "prefix from CAPTION_PREFIX"}
        assert info["notes"] == ["nothing to load: captions are made from the file's bytes"]
        assert info["in_flight"] == 0 and info["queued"] == 0


@pytest.mark.parametrize(("env", "needle"), [
    ({"CAPTION_MAX_PIXELS": "lots"}, "CAPTION_MAX_PIXELS='lots': Input should be a valid integer"),
    ({"CAPTION_MAX_PIXELS": "0"}, "CAPTION_MAX_PIXELS='0': Input should be greater than or equal to 1"),
])
def test_a_bad_option_is_an_error_naming_its_variable(caption_settings, monkeypatch, env, needle):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with RunningServer(CaptionRunner, caption_settings()) as srv:
        health = httpx.get(srv.url + "/health").json()
        assert health["status"] == "ERROR" and needle in health["error"], health


def test_an_unhealthy_runner_turns_health_to_error_and_refuses_work(caption_settings):
    cls = type("Caption", (CaptionRunner,), {"unhealthy": None})
    with RunningServer(cls, caption_settings()) as srv:
        assert post_image(srv, tiny_png(4, 4, 1)).status_code == 200
        cls.unhealthy = "engine thread stopped"
        assert httpx.get(srv.url + "/health").json() == {"status": "ERROR", "error": "engine thread stopped"}
        r = post_image(srv, tiny_png(4, 4, 1))
        assert r.status_code == 500 and "engine thread stopped" in r.json()["detail"]["msg"]
        cls.unhealthy = None  # ERROR is for good: a runner that died once is not trusted again
        assert httpx.get(srv.url + "/health").json()["status"] == "ERROR"
        assert srv.host.capacity.in_flight == 0 and srv.host.capacity.queued == 0


@pytest.mark.parametrize("name", [n for n, p in PIPELINES.items() if p.route is not None])
def test_every_table_route_serves_its_openapi_body(name, settings):
    route = PIPELINES[name].route

    class Any(Runner):
        pass

    Any.route = route
    with RunningServer(Any, settings(pipeline=name)) as srv:
        doc = httpx.get(srv.url + "/openapi.json").json()
    op = doc["paths"][route.path]["post"]
    assert op["operationId"] == route.operation_id
    assert set(op["responses"]) == {"200", *map(str, route.error_statuses)}
    ref = op["requestBody"]["content"]
    if route.multipart:
        body = doc["components"]["schemas"][f"Body_{route.operation_id}"]
        assert body["required"] == list(route.file_parts)
        for part in route.file_parts:
            assert body["properties"][part] == {"type": "string", "format": "binary", "title": part.title()}
        assert "multipart/form-data" in ref
    else:
        assert "application/json" in ref
    other = next(p for p in PIPELINES.values() if p.name != name)
    with RunningServer(Any, settings(pipeline=name)) as srv:
        r = httpx.post(srv.url + other.path, json={})
        assert r.status_code == 500 and f"pipeline {other.name} not served" in r.json()["detail"]["msg"]


def test_routes_say_their_messages_as_upstream_does():
    assert routes.LLM.mismatch_message("a", "b") == "pipeline configured with a but called with b"
    assert routes.TEXT_TO_IMAGE.mismatch_message("a", "b") == "pipeline configured with a but called with b."
    assert routes.IMAGE_TO_TEXT.too_large_message == "File size exceeds limit"
    assert routes.AUDIO_TO_TEXT.too_large_message == "File size exceeds limit."
    assert routes.LLM.model_field == "model" and routes.TEXT_TO_SPEECH.model_field == "model_id"


def test_out_of_memory_is_recognised_in_its_usual_forms():
    from runner_sdk.errors import is_out_of_memory

    assert is_out_of_memory(MemoryError())
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough "
                                         "memory: you tried to allocate 1073741824 bytes."))
    assert is_out_of_memory(type("OutOfMemoryError", (RuntimeError,), {})("boom"))
    assert not is_out_of_memory(ValueError("strength must be in [0, 1]"))
