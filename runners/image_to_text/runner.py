"""Image-to-text reference runner: BLIP captioning (`Salesforce/blip-image-captioning-large`, `-base`) through
transformers (contract 3.11, 8.7).

Per request: the SDK checks model_id (no trailing period on this route); `decode` opens the upload by its
bytes (EXIF upright, RGB, bounded; undecodable is a 400, never upstream's text/plain 500), resizes and
normalises it and tokenises the prompt, all before the request queues; `predict` hands it to a batcher, so
requests that wait together (capacity > 1) run as one `generate` call. Greedy decoding as upstream, with a
bounded caption length; with a prompt, BLIP continues it and the caption starts with it.

Configuration (env vars, on top of the SDK's):
- BLIP_MAX_NEW_TOKENS: caption tokens after the prompt (default 20, upstream's effective limit).
- BLIP_MAX_BATCH: most requests in one generate call (default 8 on CUDA, 4 on the CPU).
- BLIP_MAX_PROMPT_TOKENS: longest prompt accepted, in tokens (default 64; 400 beyond).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from runner_sdk import BadRequest, Job, JobCancelled, LoadContext, Runner, RunnerOptions, routes, schemas
from runner_sdk.images import open_image
from runner_sdk.resolve import resolve_snapshot

from .batcher import Batcher

ALLOW_PATTERNS = ["*.json", "*.safetensors", "*.txt"]


class BlipOptions(RunnerOptions):
    """The image-to-text runner's env vars (see the module docstring)."""

    blip_max_new_tokens: int = Field(20, ge=1, le=256, description="caption tokens after the prompt")
    blip_max_batch: int | None = Field(None, ge=1, description="requests per generate call; 8 CUDA, 4 CPU")
    blip_max_prompt_tokens: int = Field(64, ge=1, le=256, description="longest prompt accepted (tokens)")


@dataclass
class Caption:
    """What `decode` hands to `predict`: the preprocessed image and the tokenised prompt."""

    pixel_values: Any  # torch.Tensor 1x3xHxW, float32
    input_ids: Any  # torch.LongTensor 1xL ([CLS] prompt [SEP]) or None without a prompt

    @property
    def key(self) -> int:
        """Requests batch together when their prompts have the same token length (no padding needed)."""
        return 0 if self.input_ids is None else int(self.input_ids.shape[1])


def pick_dtype(device: str, bfloat16: bool):
    """fp16 on CUDA (bf16 with BFLOAT16), fp32 on the CPU.

    Args:
        device: "cpu" or "cuda[:N]". bfloat16: the BFLOAT16 flag.
    Returns:
        The torch dtype to load the weights in.
    """
    import torch

    if not device.startswith("cuda"):
        return torch.float32
    return torch.bfloat16 if bfloat16 else torch.float16


class ImageToTextRunner(Runner[schemas.ImageToTextForm, Caption]):
    """BLIP captioning on /image-to-text (see the module docstring)."""

    route = routes.IMAGE_TO_TEXT
    Options = BlipOptions
    oom_message: ClassVar[str] = "Out of memory error. Try reducing input image resolution."
    error_message: ClassVar[str] = "Image-to-text pipeline error."

    def setup(self, ctx: LoadContext) -> None:
        """Load BLIP and its processor from MODEL_DIR onto the device, by phase; report dtype and batching.

        Args:
            ctx: the load context (settings, device, phase timer).
        Raises:
            ModelNotFound: the model is not in MODEL_DIR (and may not be downloaded). Anything from_pretrained
                raises (the runner then reports ERROR with the reason).
        """
        import torch
        from transformers import BlipForConditionalGeneration, BlipProcessor

        s = ctx.settings
        for flag, on in s.optimisations_requested().items():
            if on:
                ctx.note(f"{flag} has no effect on image-to-text (ignored, as ai-runner does)")
        with ctx.phase("resolve"):
            snapshot = resolve_snapshot(s.model_id, s.model_dir, ALLOW_PATTERNS)
        self.dtype = pick_dtype(ctx.device, s.bfloat16)
        with ctx.phase("read_weights"):
            self.processor = BlipProcessor.from_pretrained(snapshot)
            self.model = BlipForConditionalGeneration.from_pretrained(
                snapshot, dtype=self.dtype, use_safetensors=True, device_map=ctx.device)
        with ctx.phase("to_device"):
            self.model.eval()
            if ctx.device.startswith("cuda"):
                torch.cuda.synchronize(ctx.device)
        o = self.options
        max_batch = o.blip_max_batch or (8 if ctx.device.startswith("cuda") else 4)
        self.batcher: Batcher[Caption, str] = Batcher(self._generate, max_batch, key=lambda c: c.key)
        ctx.report(dtype=str(self.dtype).removeprefix("torch."),
                   batching=f"waiting requests captioned together, up to {max_batch} per generate call",
                   generation=f"greedy, at most {o.blip_max_new_tokens} new tokens")

    def warmup(self) -> None:
        """One caption of a grey image before /health says IDLE (kernels, allocator, generate path)."""
        from PIL import Image

        grey = Image.new("RGB", (64, 64), (128, 128, 128))
        self._generate([self._prepare(grey, "")], [Job()])

    # --- per request ------------------------------------------------------------------------------
    def _prepare(self, image, prompt: str) -> Caption:
        pixels = self.processor.image_processor(images=image, return_tensors="pt")["pixel_values"]
        input_ids = None
        if prompt:
            input_ids = self.processor.tokenizer(prompt, return_tensors="pt")["input_ids"]
            if input_ids.shape[1] - 2 > self.options.blip_max_prompt_tokens:
                raise BadRequest(f"Prompt is {input_ids.shape[1] - 2} tokens long; this runner accepts at most "
                                 f"{self.options.blip_max_prompt_tokens}")
        return Caption(pixels, input_ids)

    def decode(self, request: schemas.ImageToTextForm) -> Caption:
        """Open, resize and normalise the image and tokenise the prompt, before the request queues.

        Args:
            request: the parsed multipart form.
        Returns:
            The preprocessed image and prompt ids.
        Raises:
            RunnerError: 400 for an undecodable or oversize image, or a prompt over BLIP_MAX_PROMPT_TOKENS.
        """
        return self._prepare(open_image(request.image.path), request.prompt)

    def predict(self, inputs: Caption, job: Job) -> schemas.ImageToTextResponse:
        """Caption one request, in a batch with the requests waiting beside it.

        Args:
            inputs: from `decode`. job: this request's job.
        Returns:
            The caption (with a prompt, it starts with the prompt).
        Raises:
            JobCancelled: the client went away before its batch ran, or every request of its batch did.
        """
        job.step()
        with job.stage("caption"):
            text = self.batcher.submit(inputs, job)
        return schemas.ImageToTextResponse(text=text)

    def _generate(self, items: list[Caption], jobs: list[Job]) -> list[str]:
        """One generate call for `items` (same prompt length); stops early only when every job is cancelled."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        class AllCancelled(StoppingCriteria):
            """Stop generating once nobody waits for the batch any more."""

            def __call__(self, input_ids, scores, **kwargs):
                return torch.full((input_ids.shape[0],), all(j.cancelled for j in jobs), dtype=torch.bool,
                                  device=input_ids.device)

        pixels = torch.cat([c.pixel_values for c in items]).to(self.device, self.dtype)
        kwargs: dict[str, Any] = {}
        if items[0].input_ids is not None:
            ids = torch.cat([c.input_ids for c in items]).to(self.device)
            kwargs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        with torch.inference_mode():
            out = self.model.generate(pixel_values=pixels, max_new_tokens=self.options.blip_max_new_tokens,
                                      num_beams=1, do_sample=False,
                                      stopping_criteria=StoppingCriteriaList([AllCancelled()]), **kwargs)
        if all(j.cancelled for j in jobs):
            raise JobCancelled()
        return [t.strip() for t in self.processor.batch_decode(out, skip_special_tokens=True)]

    def info(self) -> dict[str, Any]:
        """Batching counters and the caption budget, for /runner/info."""
        return {"batching": self.batcher.info(), "max_new_tokens": self.options.blip_max_new_tokens}

    @classmethod
    def download_plan(cls, model_id: str) -> list[tuple[str, list[str] | None]]:
        """The repo's configs, tokenizer and safetensors weights (no .bin/.h5 duplicates)."""
        return [(model_id, ALLOW_PATTERNS)]
