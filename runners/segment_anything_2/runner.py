"""Segment-anything-2 reference runner: SAM 2 / SAM 2.1 (Hiera tiny, small, base-plus, large) through
transformers' own `Sam2Model` (contract 3.12, 8.8).

Per request: the SDK checks model_id; `decode` parses and shape-checks the four JSON prompt parts (400s naming
the field, Q39), then opens the image (400 when undecodable, Q32) and resizes and normalises it to the model's
1024 x 1024 input, all before the request queues. `predict` computes the image embedding once, runs the prompt
encoder and mask decoder on every object's prompt in one call, upsamples the masks to the input size, sorts
each object's masks by descending score and prints the three fields as upstream does (Python's printed nested
lists; logits clamped to [-32, 32]; 0.0/1.0 masks when return_logits is false).

Multi-object prompts (B x N x 2 points or B x 4 boxes) answer B x C x H x W masks, B x C scores and
B x C x 256 x 256 logits (Q38: upstream mis-shapes them). Runs in fp32, as upstream does; on CUDA TF32
matmuls are allowed unless SAM2_TF32=false.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from runner_sdk import (
    BadRequest,
    Job,
    JobCancelled,
    LoadContext,
    Runner,
    RunnerError,
    RunnerOptions,
    routes,
    schemas,
)
from runner_sdk.errors import is_out_of_memory
from runner_sdk.images import open_image
from runner_sdk.integrity import integrity_of
from runner_sdk.resolve import resolve_snapshot

from .prompts import Prompts, parse_prompts, printed

log = logging.getLogger(__name__)

ALLOW_PATTERNS = ["*.json", "*.safetensors"]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class Sam2Options(RunnerOptions):
    """The segment-anything-2 runner's env vars."""

    sam2_tf32: bool = Field(True, description="allow TF32 matmuls on CUDA (SAM2_TF32)")
    # The answer prints every mask value at the input's resolution (~20 bytes each, three masks per object):
    # a 12 MP photo is ~720 MB of text. Bounded so a request is refused with a 400, not an out-of-memory kill.
    sam2_max_pixels: int = Field(4 * 1024 * 1024, ge=1, description="largest input, width x height (SAM2_MAX_PIXELS)")
    sam2_max_objects: int = Field(16, ge=1, description="most objects (boxes / point sets) per request")


@dataclass
class Segmentation:
    """What `decode` hands to `predict`."""

    pixels: Any  # torch.Tensor 1x3xSxS, normalised
    size: tuple[int, int]  # (height, width) of the input
    prompts: Prompts
    multimask: bool
    return_logits: bool
    normalize_coords: bool


class SegmentAnything2Runner(Runner[schemas.SegmentAnything2Form, Segmentation]):
    """SAM 2 on /segment-anything-2 (see the module docstring)."""

    route = routes.SEGMENT_ANYTHING_2
    Options = Sam2Options
    oom_message: ClassVar[str] = "Out of memory error. Try reducing input image resolution."
    error_message: ClassVar[str] = "Segment-anything-2 pipeline error."

    def setup(self, ctx: LoadContext) -> None:
        """Load Sam2Model (fp32) and the preprocessing constants from MODEL_DIR onto the device, by phase.

        Args:
            ctx: the load context (settings, device, phase timer).
        Raises:
            ModelNotFound: the model is not in MODEL_DIR. Anything from_pretrained raises (for instance a repo
                with only sam2's original .pt checkpoint): the runner then reports ERROR with the reason.
        """
        import torch
        from transformers import Sam2Model

        s = ctx.settings
        for flag, on in s.optimisations_requested().items():
            if on:
                ctx.note(f"{flag} has no effect on segment-anything-2 (ignored, as ai-runner does)")
        with ctx.phase("resolve"):
            snapshot = resolve_snapshot(s.model_id, s.model_dir, ALLOW_PATTERNS)
        with ctx.phase("read_weights"):
            self.model = Sam2Model.from_pretrained(snapshot, dtype=torch.float32, use_safetensors=True,
                                                   device_map=ctx.device)
            pre = snapshot / "preprocessor_config.json"
            config = json.loads(pre.read_text()) if pre.exists() else {}
        with ctx.phase("to_device"):
            self.model.eval()
            if ctx.device.startswith("cuda"):
                torch.cuda.synchronize(ctx.device)
        self.side = int(self.model.config.prompt_encoder_config.image_size)
        self.mean = torch.tensor(config.get("image_mean", MEAN)).view(1, 3, 1, 1)
        self.std = torch.tensor(config.get("image_std", STD)).view(1, 3, 1, 1)
        applied = {"embedding": "computed once per request, shared by every object's prompt"}
        if ctx.device.startswith("cuda") and self.options.sam2_tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            applied["tf32"] = "TF32 matmuls and convolutions (SAM2_TF32=false turns it off)"
        ctx.report(dtype="float32", **applied)

    def warmup(self) -> None:
        """One point-prompted segmentation of a small image before /health says IDLE."""
        from PIL import Image

        image = Image.new("RGB", (64, 48), (120, 90, 60))
        self.predict(self._prepare(image, Prompts(points=np.array([[[32, 24]]], np.float32),
                                                  labels=np.array([[1]], np.int32)), True, True, True), Job())

    # --- per request ------------------------------------------------------------------------------
    def _prepare(self, image, prompts: Prompts, multimask: bool, return_logits: bool,
                 normalize: bool) -> Segmentation:
        import torch
        from PIL import Image

        resized = image.resize((self.side, self.side), Image.Resampling.BILINEAR)
        pixels = torch.from_numpy(np.asarray(resized, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        pixels = (pixels - self.mean) / self.std
        return Segmentation(pixels, (image.height, image.width), prompts, multimask, return_logits, normalize)

    def decode(self, request: schemas.SegmentAnything2Form) -> Segmentation:
        """Parse the prompt parts (the contract's order: JSON first), then open and resize the image.

        Args:
            request: the parsed multipart form.
        Returns:
            The model's input tensor, the input size and the validated prompts.
        Raises:
            RunnerError: 400 for invalid JSON or shapes (naming the field) and for an undecodable image.
        """
        prompts = parse_prompts(request.point_coords, request.point_labels, request.box, request.mask_input,
                                request.normalize_coords)
        objects = max((len(a) for a in (prompts.points, prompts.boxes) if a is not None), default=1)
        if objects > self.options.sam2_max_objects:
            raise BadRequest(f"{objects} objects in one request; this runner accepts at most "
                             f"{self.options.sam2_max_objects} (SAM2_MAX_OBJECTS).")
        image = open_image(request.image.path, max_pixels=self.options.sam2_max_pixels)
        return self._prepare(image, prompts, request.multimask_output, request.return_logits,
                             request.normalize_coords)

    def _prompt_tensors(self, seg: Segmentation) -> dict[str, Any]:
        """The prompts in the model's 1024 x 1024 frame: pixels scaled per axis, or [0, 1] times the side."""
        import torch

        p, (h, w) = seg.prompts, seg.size
        scale = np.array([self.side / w, self.side / h], np.float32) if seg.normalize_coords else \
            np.array([self.side, self.side], np.float32)
        out: dict[str, Any] = {}
        if p.points is not None:
            out["input_points"] = torch.from_numpy(p.points * scale)[None].to(self.device)
            out["input_labels"] = torch.from_numpy(p.labels)[None].to(self.device)
        if p.boxes is not None:
            out["input_boxes"] = torch.from_numpy(p.boxes * np.tile(scale, 2))[None].to(self.device)
        if p.mask is not None:
            out["input_masks"] = torch.from_numpy(p.mask)[None].to(self.device)
        return out

    def predict(self, inputs: Segmentation, job: Job) -> schemas.MasksResponse:
        """Embed the image once, decode every object's masks, print the three fields.

        Args:
            inputs: from `decode`. job: this request's job.
        Returns:
            masks, scores and logits as Python-printed nested lists, each object's masks by descending score.
        Raises:
            RunnerError: 400 `Error during model execution: <error>.` for an error inside the model.
            JobCancelled: the client went away (checked after the embedding and after the masks).
        """
        try:
            masks, scores, logits = self._segment(inputs, job)
        except (RunnerError, JobCancelled):
            raise
        except Exception as exc:
            if is_out_of_memory(exc):
                raise  # the SDK frees the cache and answers 500 with oom_message
            log.exception("segmentation failed")
            raise RunnerError(400, f"Error during model execution: {exc}.") from exc
        job.step()
        integrity = integrity_of(self)
        for stage, value in (("mask scores", scores), ("mask logits", logits), ("masks", masks)):
            integrity.check(value, stage)  # NaN/Infinity never reaches the printed strings (a JSON 500)
        with job.stage("print"):
            arrays = [t.cpu().numpy() for t in (masks, scores, logits)]
            if not inputs.prompts.batched:
                arrays = [a[0] for a in arrays]
            return schemas.MasksResponse(masks=printed(arrays[0]), scores=printed(arrays[1]),
                                         logits=printed(arrays[2]))

    def _segment(self, inputs: Segmentation, job: Job):
        """Masks (B x C x H x W), scores (B x C) and clamped logits (B x C x 256 x 256), sorted per object."""
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            with job.stage("embed"):
                embeddings = self.model.get_image_embeddings(inputs.pixels.to(self.device))
            job.step()
            with job.stage("decode_masks"):
                out = self.model(image_embeddings=embeddings, multimask_output=inputs.multimask,
                                 **self._prompt_tensors(inputs))
                low = out.pred_masks[0].float()  # B x C x 256 x 256
                scores = out.iou_scores[0].float()  # B x C
                order = scores.argsort(dim=1, descending=True)
                scores = scores.gather(1, order)
                low = low.gather(1, order[:, :, None, None].expand_as(low))
                masks = F.interpolate(low, size=inputs.size, mode="bilinear", align_corners=False)
                if not inputs.return_logits:
                    masks = (masks > 0.0).float()
                return masks, scores, low.clamp(-32.0, 32.0)

    @classmethod
    def download_plan(cls, model_id: str) -> list[tuple[str, list[str] | None]]:
        """The repo's configs and safetensors weights (transformers' format)."""
        return [(model_id, ALLOW_PATTERNS)]
