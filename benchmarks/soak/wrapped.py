"""Runner classes `runner-sdk serve --runner` can load for the reliability suite and the soak:

- FakeImage, FakeAudio, FakeLLM: the SDK test fakes with a few cancellable steps of real sleeping (REL_FORWARD_DELAY_S each when set), so a
  request occupies its slot long enough to queue behind it (FakeLLM also answers non-stream requests).
- Any reference runner by class name (e.g. `benchmarks.soak.wrapped:TextToImageRunner`): the real runner,
  with every top-level model call delayed by REL_FORWARD_DELAY_S seconds when that is set (a slow model,
  so a SIGTERM finds a request in flight).
"""

from __future__ import annotations

import os
import time
from contextlib import ExitStack

from fakes import FakeAudioRunner, FakeImageRunner, FakeLLMRunner

from runner_sdk import BadRequest, Job, schemas


def _step_s(default: float) -> float:
    return float(os.environ.get("REL_FORWARD_DELAY_S") or default)


class FakeImage(FakeImageRunner):
    steps = 5
    step_s = 0.01
    max_pixels = 512 * 512  # like the real runner's T2I_MAX_PIXELS: fuzzed sizes stay cheap to draw

    def setup(self, ctx):
        super().setup(ctx)
        type(self).step_s = _step_s(self.step_s)

    def decode(self, request: schemas.TextToImageParams) -> schemas.TextToImageParams:
        request = super().decode(request)
        images = request.num_images_per_prompt
        if min(request.width, request.height, images) <= 0 or request.width * request.height * images > self.max_pixels:
            raise BadRequest(f"width x height x images must be positive and at most {self.max_pixels}")
        return request


class FakeAudio(FakeAudioRunner):
    steps = 5
    step_s = 0.01

    def setup(self, ctx):
        super().setup(ctx)
        type(self).step_s = _step_s(self.step_s)

    def predict(self, request, job: Job):
        for _ in range(self.steps):
            job.step()
            time.sleep(self.step_s)
        return super().predict(request, job)


class FakeLLM(FakeLLMRunner):
    step_s = 0.01

    def setup(self, ctx):
        super().setup(ctx)
        type(self).step_s = _step_s(self.step_s)

    def predict(self, request, job: Job):
        chunks = super().predict(request, job)
        if self.wants_stream(request):
            return chunks
        # Non-stream: the whole reply as one message (the SDK fake only streams).
        parts = list(chunks)
        last = parts[-1]
        text = "".join(p.choices[0].delta.content for p in parts)
        return schemas.LLMResponse(
            id=last.id, model=last.model, created=last.created, usage=last.usage,
            choices=[schemas.LLMChoice(index=0, finish_reason=last.choices[0].finish_reason,
                                       message=schemas.LLMMessage(role="assistant", content=text))])


def _delayed(cls):
    class Delayed(cls):
        def setup(self, ctx):
            super().setup(ctx)
            delay = float(os.environ.get("REL_FORWARD_DELAY_S") or 0)
            if delay > 0:
                from .inject import forward_delay

                self._delay = ExitStack()
                self._delay.enter_context(forward_delay(delay))  # for the life of the process
                ctx.note(f"reliability: every model call delayed {delay} s")

    Delayed.__name__ = Delayed.__qualname__ = cls.__name__
    return Delayed


def __getattr__(name: str):
    from runner_sdk.pipelines import load_object, served

    for row in served():
        if row.runner.rpartition(":")[2] == name:
            return _delayed(load_object(row.runner))
    raise AttributeError(name)
