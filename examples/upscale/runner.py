"""A custom runner in one file: 2x image upscaling on Livepeer's /upscale route, with only the SDK.

The model is a tiny ESPCN-style network (conv -> pixel shuffle) whose weights live in MODEL_DIR like any
Hugging Face repo. Serve it from the repo root with:
    RUNNER_CLASS=examples.upscale.runner:UpscaleRunner PIPELINE=upscale MODEL_ID=acme/espcn-x2 runner-sdk serve
"""

from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from runner_sdk import BadRequest, Job, LoadContext, Runner, routes, schemas
from runner_sdk.resolve import resolve_snapshot


class ESPCN(torch.nn.Module):
    def __init__(self, scale: int = 2, width: int = 16):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, width, 5, padding=2), torch.nn.Tanh(),
                                        torch.nn.Conv2d(width, 3 * scale * scale, 3, padding=1))
        self.shuffle = torch.nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.body(x)).clamp(0, 1)


class UpscaleRunner(Runner[schemas.UpscaleForm, tuple[torch.Tensor, int]]):
    route = routes.UPSCALE  # multipart: the form's `image: UploadedFile`, `prompt`, `seed`, `model_id`...
    error_message = "Upscale pipeline error."

    def setup(self, ctx: LoadContext) -> None:
        with ctx.phase("resolve"):
            folder = resolve_snapshot(ctx.settings.model_id, ctx.settings.model_dir, ["*.safetensors"])
        with ctx.phase("read_weights"):
            self.net = ESPCN()
            self.net.load_state_dict(load_file(folder / "model.safetensors"))
        with ctx.phase("to_device"):
            self.net.to(ctx.device).eval()
        ctx.report(dtype="float32")

    def decode(self, request: schemas.UpscaleForm) -> tuple[torch.Tensor, int]:
        try:  # before the request queues: a bad upload is the caller's 400, never a slot taken
            image = Image.open(request.image.path).convert("RGB")
        except (OSError, Image.DecompressionBombError):
            raise BadRequest("Unsupported or malformed image.") from None
        pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().div(255)
        return pixels, request.seed or 0  # the network is deterministic: the seed is only echoed

    @torch.inference_mode()
    def predict(self, inputs: tuple[torch.Tensor, int], job: Job) -> schemas.ImageResponse:
        pixels, seed = inputs
        job.step()
        with job.stage("network"):
            y = self.net(pixels.to(self.device))[0].permute(1, 2, 0).mul(255).round().byte().cpu().numpy()
        with job.stage("encode"):
            out = io.BytesIO()
            Image.fromarray(y).save(out, format="PNG", compress_level=1)
        url = "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()
        return schemas.ImageResponse(images=[schemas.Media(url=url, seed=seed, nsfw=False)])
