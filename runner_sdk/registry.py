"""Which runner class serves which pipeline. Imports are lazy, so an audio image never imports diffusers."""

from __future__ import annotations

import importlib

from .runner import Runner

PIPELINES: dict[str, str] = {
    "text-to-image": "runners.text_to_image.runner:TextToImageRunner",
    "audio-to-text": "runners.audio_to_text.runner:AudioToTextRunner",
    "llm": "runners.llm.runner:LLMRunner",
}

# `runner-sdk synth` builders: (pipeline, model_id, model_dir, scale) -> None
SYNTH: dict[str, str] = {
    "text-to-image": "runners.text_to_image.synth:synthesize",
    "audio-to-text": "runners.audio_to_text.synth:synthesize",
    "llm": "runners.llm.synth:synthesize",
}


class UnknownPipeline(ValueError):
    pass


def load_object(spec: str):
    module, _, attr = spec.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def runner_class(pipeline: str, runner_spec: str | None = None) -> type[Runner]:
    """The runner for `pipeline`, or the custom class `module:Class` when given."""
    if runner_spec:
        cls = load_object(runner_spec)
        if not (isinstance(cls, type) and issubclass(cls, Runner)):
            raise UnknownPipeline(f"{runner_spec} is not a runner_sdk.Runner subclass")
        return cls
    if pipeline not in PIPELINES:
        raise UnknownPipeline(f"unknown pipeline {pipeline!r}; this build serves {', '.join(PIPELINES)}")
    return load_object(PIPELINES[pipeline])
