"""A custom runner in one file: 2x image upscaling on Livepeer's /upscale route, with only the SDK.

The model is a tiny ESPCN-style network (conv -> pixel shuffle) whose weights live in MODEL_DIR like any
Hugging Face repo. Serve it with:
    RUNNER_CLASS=examples.upscale.runner:UpscaleRunner PIPELINE=upscale MODEL_ID=acme/espcn-x2 runner-sdk serve
"""

from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from pydantic import Field
from safetensors.torch import load_file

from runner_sdk import BadRequest, Job, LoadContext, Route, Runner, RunnerError, schemas
from runner_sdk.resolve import resolve_snapshot


class UpscaleForm(schemas.WireModel):
    """The text parts of ai-runner's Body_genUpscale (the `image` file part is declared on the route)."""

    prompt: str = Field(..., description="Text prompt(s) to guide upscaled image generation.")
    model_id: str = ""
    safety_check: bool = True
    seed: int = 0
    num_inference_steps: int = 75


class ESPCN(torch.nn.Module):
    def __init__(self, scale: int = 2, width: int = 16):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, width, 5, padding=2), torch.nn.Tanh(),
                                        torch.nn.Conv2d(width, 3 * scale * scale, 3, padding=1))
        self.shuffle = torch.nn.PixelShuffle(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.body(x)).clamp(0, 1)


class UpscaleRunner(Runner):
    route = Route(path="/upscale", operation_id="genUpscale", summary="Upscale",
                  description="Upscale an image by increasing its resolution.", request_model=UpscaleForm,
                  response_model=schemas.ImageResponse, error_statuses=(400, 401, 413, 422, 500),
                  file_parts=("image",), body_schema_name="Body_genUpscale", max_file_bytes=20 * 1024 * 1024)
    error_message = "Upscale pipeline error."

    def setup(self, ctx: LoadContext) -> None:
        with ctx.phase("resolve"):
            folder = resolve_snapshot(ctx.settings.model_id, ctx.settings.model_dir, ["*.safetensors"])
        with ctx.phase("read_weights"):
            self.net = ESPCN()
            self.net.load_state_dict(load_file(folder / "model.safetensors"))
        with ctx.phase("to_device"):
            self.net.to(ctx.device).eval()
        self.dtype = "float32"

    def check(self, request: UpscaleForm) -> None:
        if request.model_id and request.model_id != self.settings.model_id:
            raise BadRequest(f"pipeline configured with {self.settings.model_id} but called with {request.model_id}.")

    @torch.inference_mode()
    def predict(self, request: UpscaleForm, job: Job) -> schemas.ImageResponse:
        try:
            image = Image.open(request.files["image"].path).convert("RGB")
        except (UnidentifiedImageError, OSError):
            raise RunnerError(400, "Unsupported or malformed image.") from None
        x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().div(255).to(self.device)
        job.step()
        y = self.net(x)[0].permute(1, 2, 0).mul(255).round().byte().cpu().numpy()
        out = io.BytesIO()
        Image.fromarray(y).save(out, format="PNG", compress_level=1)
        url = "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()
        return schemas.ImageResponse(images=[schemas.Media(url=url, seed=request.seed, nsfw=False)])
