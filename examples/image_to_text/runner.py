"""A second custom runner: a tiny "captioner" on Livepeer's /image-to-text route, with only the SDK.

The model is a palette: named colours (a tensor in `palette.safetensors`, names in `config.json`) living in
MODEL_DIR like any Hugging Face repo. Each pixel takes its nearest colour; the caption names the ones that
cover most of the picture, after the prompt (as BLIP's conditional captioning continues it). Serve it with:
    RUNNER_CLASS=examples.image_to_text.runner:CaptionRunner PIPELINE=image-to-text MODEL_ID=acme/palette \
        runner-sdk serve
"""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from runner_sdk import PIPELINES, BadRequest, Job, LoadContext, Runner, RunnerOptions, schemas
from runner_sdk.resolve import resolve_snapshot


class CaptionOptions(RunnerOptions):
    caption_min_share: float = 0.25  # CAPTION_MIN_SHARE: a colour covering less of the picture goes unnamed


class CaptionRunner(Runner[schemas.ImageToTextForm, tuple[torch.Tensor, str]]):
    route = PIPELINES["image-to-text"].route  # multipart: `image: UploadedFile`, `prompt`, `model_id`
    Options = CaptionOptions
    error_message = "Image-to-text pipeline error"

    def setup(self, ctx: LoadContext) -> None:
        with ctx.phase("resolve"):
            folder = resolve_snapshot(ctx.settings.model_id, ctx.settings.model_dir, ["*.safetensors", "*.json"])
        with ctx.phase("read_weights"):
            self.palette = load_file(folder / "palette.safetensors")["colours"]
            self.names = json.loads((folder / "config.json").read_text())["names"]
        with ctx.phase("to_device"):
            self.palette = self.palette.to(ctx.device)
        ctx.report(dtype="float32")

    def decode(self, request: schemas.ImageToTextForm) -> tuple[torch.Tensor, str]:
        try:  # before the request queues: a bad upload is the caller's 400, never a slot taken
            image = Image.open(request.image.path).convert("RGB")
            image.thumbnail((64, 64))  # colour shares need no more pixels than this
        except (OSError, Image.DecompressionBombError):
            raise BadRequest("Unsupported or malformed image") from None
        return torch.from_numpy(np.array(image)).reshape(-1, 3).float().div(255), request.prompt

    @torch.inference_mode()
    def predict(self, inputs: tuple[torch.Tensor, str], job: Job) -> schemas.ImageToTextResponse:
        pixels, prompt = inputs
        job.step()
        nearest = torch.cdist(pixels.to(self.device), self.palette).argmin(dim=1)
        share = torch.bincount(nearest, minlength=len(self.names)).float() / len(nearest)
        ranked = [i for i in share.argsort(descending=True).tolist() if share[i] >= self.options.caption_min_share]
        colours = " and ".join(self.names[i] for i in ranked[:2]) or "colourful"
        return schemas.ImageToTextResponse(text=f"{prompt} a {colours} picture".strip())
