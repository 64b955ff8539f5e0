"""Image-to-image runner: SDXL-Lightning (2/4/8-step), RealVisXL Lightning, the SDXL and SD Turbo ids,
InstructPix2Pix and any diffusers SD/SDXL repository, behind go-livepeer's `/image-to-image` contract
(sections 3.8, 8.4, 9.1).

It is the text-to-image runner with another pipeline class: the same loading (resolve, dtype and fp16
variant, the Lightning UNet on the SDXL base with trailing Euler), VAE precision, LoRA cache, safety checker,
SFAST/DEEPCACHE and PNG encoding, and the same options (T2I_* variables). What differs:

- the pipeline: `AutoPipelineForImage2Image.from_pipe` of what text-to-image loads (SD img2img, SDXL img2img;
  for Lightning the SDXL img2img class with the Lightning UNet and scheduler, so the input image and
  `strength` are used, unlike upstream: Q34), or InstructPix2Pix with Euler ancestral for its id;
- the request: the image comes through `runner_sdk.images.open_image` (decoded by content, EXIF upright, RGB,
  bounded: every failure a JSON 400), the output is the input's size rounded down to multiples of 8.
"""

from __future__ import annotations

from typing import Any

from runner_sdk import Job, LoadContext, routes, schemas
from runner_sdk.images import open_image
from runners.text_to_image.loading import from_pretrained, read_pipeline
from runners.text_to_image.models import ModelKind
from runners.text_to_image.requests import Generation
from runners.text_to_image.runner import TextToImageRunner

from .models import ImageModel, classify_image_model
from .requests import decode_request, plan_call


class ImageToImageRunner(TextToImageRunner):
    """`POST /image-to-image` for one diffusers model; options from `TextToImageOptions` (T2I_* variables)."""

    route = routes.IMAGE_TO_IMAGE  # type: ignore[assignment]
    oom_message = "Out of memory error. Try reducing input image resolution."
    error_message = "Image-to-image pipeline error."

    def __init__(self, settings, device: str, options=None):
        super().__init__(settings, device, options)
        self.model: ImageModel | None = None

    def setup(self, ctx: LoadContext) -> None:
        """Load MODEL_ID as text-to-image does, as its image-to-image pipeline.

        Raises:
            RuntimeError: SFAST and DEEPCACHE are both set. UnsupportedModel: a Lightning step count other
            than 2, 4 or 8. ModelNotFound: weights absent from MODEL_DIR.
        """
        self.model = classify_image_model(ctx.settings.model_id)
        super().setup(ctx)
        if ctx.settings.sfast:
            ctx.note("SFAST_WARMUP is ignored for image-to-image (contract 9.1); SFAST on img2img is unproven "
                     "upstream")

    def read_pipeline(self, kind: ModelKind, main, dtype, variant: str | None, model_dir, device: str):
        """InstructPix2Pix (Euler ancestral) for its id; otherwise the text-to-image pipeline's weights as
        the img2img pipeline of the same family (`AutoPipelineForImage2Image.from_pipe`: no second copy).

        Returns:
            The pipeline, progress bars off.
        """
        from diffusers import AutoPipelineForImage2Image, EulerAncestralDiscreteScheduler
        from diffusers import StableDiffusionInstructPix2PixPipeline as Pix2Pix

        from runners.text_to_image.loading import dtype_kwargs

        assert self.model is not None
        if self.model.pix2pix:
            pipe = from_pretrained(Pix2Pix, main, device, **dtype_kwargs(dtype), variant=variant,
                                   use_safetensors=True)
            pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(pipe.scheduler.config)
        else:
            pipe = AutoPipelineForImage2Image.from_pipe(read_pipeline(kind, main, dtype, variant, model_dir, device))
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def _one_image(self, pipe, inputs: Generation, seed: int, job: Job) -> schemas.Media:
        """As text-to-image; with DEEPCACHE, its step origin is reset first. img2img starts part-way down the
        schedule (at step `(1 - strength) * steps`) and DeepCache keeps the first run's origin for good, so
        without the reset a request whose origin differs would reuse the previous request's features."""
        if self.deepcache is not None:
            self.deepcache.start_timestep = None
        return super()._one_image(pipe, inputs, seed, job)

    def size_kwargs(self, inputs: Generation) -> dict[str, int]:
        """None: the output follows the input image in the call."""
        return {}

    def warmup(self) -> None:
        """One image from a mid-grey input of T2I_WARMUP_SIZE with 2 steps (the forced count for Lightning),
        so compiled graphs and allocator pools exist before /health says ready."""
        from PIL import Image

        assert self.model is not None
        width, height = self.warmup_size
        image = Image.new("RGB", (width, height), (128, 128, 128))
        call = plan_call(self.model, image, "a warm-up photo of a lighthouse", "", 1.0, 7.5, 1.5, 2)
        self.predict(Generation(width=width, height=height, seeds=[0], call=call,
                                safety_check=self.safety is not None), Job())

    def decode(self, request: schemas.ImageToImageForm) -> Generation:  # type: ignore[override]
        """Decode the input image and validate the request against this model and these options.

        Raises:
            RunnerError: 400 for undecodable image bytes or an image over T2I_MAX_PIXELS.
            BadRequest: strength outside [0, 1], image count, pixel budget, steps, seed or `loras` invalid.
        """
        assert self.model is not None
        o = self.options
        image = open_image(request.image.path, max_pixels=o.t2i_max_pixels)
        return decode_request(request, image, self.model, o.t2i_max_pixels, o.t2i_max_steps)

    def info(self) -> dict[str, Any]:
        """The text-to-image facts plus the image-to-image branch."""
        facts = super().info()
        facts["instruct_pix2pix"] = bool(self.model and self.model.pix2pix)
        return facts
