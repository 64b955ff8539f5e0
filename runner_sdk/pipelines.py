"""The pipeline table: every go-livepeer pipeline, served by this project or not, in one place.

The app, the CLI (`serve`, `demo`, `synth`, `bench`), `aimodels validate`, `aimodels plan` and the docs all
read this table; nothing else lists pipelines. Sources: runner-contract.md 3.5-3.7 and
runner-contract-more-pipelines.md (the table at its top): routes from ai-runner's `openapi.yaml`, default
model ids from `go-livepeer: server/ai_process.go`, billing units from `server/ai_http.go`
(`handleAIRequest`).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from . import routes
from .routes import Route


@dataclass(frozen=True)
class Pipeline:
    """One go-livepeer pipeline.

    Attributes:
        name: the pipeline name in aiModels.json and go-livepeer's capability table (e.g. "text-to-image").
        path: the runner's POST path.
        route: the route's full description (schemas, statuses), or None for live-video-to-video, which is
            a long-lived stream, not a batch request (contract 3.14).
        pricing_unit: what the orchestrator bills per unit of `price_per_unit`: "pixels" (output or input
            width x height, times images or 25 frames), "audio_ms" (milliseconds of input audio),
            "tokens" (LLM tokens), "characters" (1000 x code points of the text), or "stream-seconds".
        default_model_id: the model id go-livepeer (gateway) uses when a request names none.
        diffusion: a diffusion pipeline (the SFAST/DEEPCACHE flags and step counts apply, contract 9).
        runner: "module:Class" of this project's reference runner, or None when not served yet.
        synth: "module:function" building synthetic weights for it (`runner-sdk synth`), or None.
        demo_model_id: the id `runner-sdk demo` and `bench` synthesize by default.
    """

    name: str
    path: str
    route: Route | None
    pricing_unit: str
    default_model_id: str
    diffusion: bool = False
    runner: str | None = None
    synth: str | None = None
    demo_model_id: str | None = None

    @property
    def served(self) -> bool:
        return self.runner is not None

    @property
    def encoding(self) -> str:
        """"multipart" or "json" (live-video-to-video: "json" control call)."""
        return "multipart" if self.route is not None and self.route.multipart else "json"

    @property
    def file_part(self) -> str | None:
        return self.route.file_parts[0] if self.route is not None and self.route.multipart else None


def _p(name: str, route: Route | None, unit: str, default: str, **kw: Any) -> Pipeline:
    return Pipeline(name, f"/{name}", route, unit, default, **kw)


PIPELINES: dict[str, Pipeline] = {p.name: p for p in (
    _p("text-to-image", routes.TEXT_TO_IMAGE, "pixels", "stabilityai/sdxl-turbo", diffusion=True,
       runner="runners.text_to_image.runner:TextToImageRunner", synth="runners.text_to_image.synth:synthesize",
       demo_model_id="ByteDance/SDXL-Lightning-4step"),
    _p("image-to-image", routes.IMAGE_TO_IMAGE, "pixels", "stabilityai/sdxl-turbo", diffusion=True,
       runner="runners.image_to_image.runner:ImageToImageRunner", synth="runners.image_to_image.synth:synthesize",
       demo_model_id="ByteDance/SDXL-Lightning-4step"),
    _p("image-to-video", routes.IMAGE_TO_VIDEO, "pixels", "stabilityai/stable-video-diffusion-img2vid-xt",
       diffusion=True, runner="runners.image_to_video.runner:ImageToVideoRunner",
       synth="runners.image_to_video.synth:synthesize",
       demo_model_id="stabilityai/stable-video-diffusion-img2vid-xt"),
    _p("upscale", routes.UPSCALE, "pixels", "stabilityai/stable-diffusion-x4-upscaler", diffusion=True,
       runner="runners.upscale.runner:UpscaleRunner", synth="runners.upscale.synth:synthesize",
       demo_model_id="stabilityai/stable-diffusion-x4-upscaler"),
    _p("audio-to-text", routes.AUDIO_TO_TEXT, "audio_ms", "openai/whisper-large-v3",
       runner="runners.audio_to_text.runner:AudioToTextRunner", synth="runners.audio_to_text.synth:synthesize",
       demo_model_id="openai/whisper-large-v3"),
    _p("segment-anything-2", routes.SEGMENT_ANYTHING_2, "pixels", "facebook/sam2-hiera-large",
       runner="runners.segment_anything_2.runner:SegmentAnything2Runner",
       synth="runners.segment_anything_2.synth:synthesize", demo_model_id="facebook/sam2-hiera-large"),
    _p("llm", routes.LLM, "tokens", "meta-llama/llama-3.1-8B-Instruct",
       runner="runners.llm.runner:LLMRunner", synth="runners.llm.synth:synthesize",
       demo_model_id="meta-llama/Meta-Llama-3.1-8B-Instruct"),
    _p("image-to-text", routes.IMAGE_TO_TEXT, "pixels", "Salesforce/blip-image-captioning-large",
       runner="runners.image_to_text.runner:ImageToTextRunner", synth="runners.image_to_text.synth:synthesize",
       demo_model_id="Salesforce/blip-image-captioning-large"),
    # The demo is VITS (MMS-TTS), which the main environment serves; go-livepeer's default Parler-TTS needs the
    # parler-tts package and its own environment (runners/text_to_speech/README.md).
    _p("text-to-speech", routes.TEXT_TO_SPEECH, "characters", "parler-tts/parler-tts-large-v1",
       runner="runners.text_to_speech.runner:TextToSpeechRunner", synth="runners.text_to_speech.synth:synthesize",
       demo_model_id="facebook/mms-tts-eng"),
    _p("live-video-to-video", None, "stream-seconds", "noop"),
)}


def served() -> list[Pipeline]:
    """The pipelines this build has a reference runner for, in table order."""
    return [p for p in PIPELINES.values() if p.served]


def names(*, served_only: bool = False, diffusion: bool | None = None) -> tuple[str, ...]:
    """Pipeline names in table order, optionally only those served or only (non-)diffusion ones."""
    return tuple(p.name for p in PIPELINES.values()
                 if (not served_only or p.served) and (diffusion is None or p.diffusion == diffusion))


class UnknownPipeline(ValueError):
    """A pipeline name not in the table, or not served by this build."""


def get(name: str) -> Pipeline:
    """The table row for `name`. Raises UnknownPipeline naming the valid ones."""
    try:
        return PIPELINES[name]
    except KeyError:
        raise UnknownPipeline(f"unknown pipeline {name!r}; go-livepeer knows {', '.join(PIPELINES)}") from None


def load_object(spec: str) -> Any:
    """Import "module:attr.path" lazily (an audio image never imports diffusers)."""
    module, _, attr = spec.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def runner_class(pipeline: str, runner_spec: str | None = None) -> type:
    """The runner class for `pipeline`, or the custom class `module:Class` when given.

    Raises:
        UnknownPipeline: `pipeline` has no reference runner in this build, or `runner_spec` is not a Runner.
    """
    from .runner import Runner

    if runner_spec:
        cls = load_object(runner_spec)
        if not (isinstance(cls, type) and issubclass(cls, Runner)):
            raise UnknownPipeline(f"{runner_spec} is not a runner_sdk.Runner subclass")
        return cls
    row = PIPELINES.get(pipeline)
    if row is None or row.runner is None:
        raise UnknownPipeline(f"unknown pipeline {pipeline!r}; this build serves {', '.join(names(served_only=True))}")
    return load_object(row.runner)


def synthesize(pipeline: str, model_id: str, model_dir: Any, scale: str) -> None:
    """Build synthetic weights for `model_id` in `model_dir` (HF cache layout), `scale` "tiny" or "full".

    Raises:
        UnknownPipeline: no synthetic builder for `pipeline`.
    """
    row = PIPELINES.get(pipeline)
    if row is None or row.synth is None:
        raise UnknownPipeline(f"no synthetic builder for {pipeline!r}")
    load_object(row.synth)(model_id, model_dir, scale)
