"""Wire schemas of the go-livepeer AI runner contract (ai-runner `runner/openapi.yaml`, v0.14.1).

Field names, JSON types, defaults and required sets match the contract exactly: go-livepeer's client is
generated from that document, so a renamed field or a changed default is a protocol break. The
generate-route request models ignore unknown fields (contract 3.5, 6).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from .uploads import UploadedFile

Bounds = tuple[float | None, float | None]  # (lowest, highest) allowed, inclusive; None: unbounded that side
INT64 = (-(2**63), 2**63 - 1)  # Go's int: go-livepeer cannot send, nor read back, a wider integer
# Below 1 means "the pipeline's default" (contract 3.5); a model that forces its steps (Lightning) ignores
# any value, so only int32 is absurd here: each runner bounds the steps it runs (T2I_MAX_STEPS).
STEPS = (None, 2**31 - 1)
SIZE = (None, 16_384)  # positivity and multiples of 8 are the runners' own 400s (upstream's messages)
GUIDANCE = (0.0, 50.0)  # past this, CFG only amplifies noise, and overflows to NaN in half precision
IMAGES = (None, 64)  # the runners' pixel budgets bound it further; <= 0 keeps the runners' messages


class _Wire(BaseModel):
    # Unknown fields from Go's json.Marshal (or newer gateways) are ignored, never rejected.
    model_config = ConfigDict(extra="ignore", protected_namespaces=())
    # Allowed ranges of numeric fields, checked after schema validation (`numeric_error`), so that an
    # absurd or non-finite value is a 400 naming the field and its range instead of garbage behind a 200.
    # Kept out of the OpenAPI document: its shape is the contract's. Every float must also be finite and
    # every int must fit Go's int64, ranged or not.
    ranges: ClassVar[dict[str, Bounds]] = {}


def _no_default(schema: dict[str, Any]) -> None:
    # Optional in the body but not nullable: the wire schema shows no default (the runner draws one).
    schema.pop("default", None)


# --- errors ---------------------------------------------------------------------------------------


class APIError(_Wire):
    """API error response model."""

    msg: str = Field(..., description="The error message.")


class HTTPError(_Wire):
    """HTTP error response model."""

    detail: APIError = Field(..., description="Detailed error information.")


class ValidationError(_Wire):
    loc: list[str | int] = Field(..., title="Location")
    msg: str = Field(..., title="Message")
    type: str = Field(..., title="Error Type")


class HTTPValidationError(_Wire):
    detail: list[ValidationError] = Field(default_factory=list)


# --- health, version, hardware --------------------------------------------------------------------


class HealthCheck(_Wire):
    status: Literal["LOADING", "OK", "ERROR", "IDLE"] = Field(
        ..., description="The health status of the pipeline"
    )
    # Our extension (go-livepeer ignores unknown keys): why the runner is in ERROR.
    error: str | None = Field(None, description="Why loading failed; present only with status ERROR.")


class Version(_Wire):
    pipeline: str
    model_id: str
    version: str = Field(..., description="The version of the Runner")


class GPUComputeInfo(_Wire):
    """Model for detailed GPU compute information."""

    id: str
    name: str
    memory_total: int
    memory_free: int
    major: int
    minor: int


class GPUUtilizationInfo(_Wire):
    """Model for GPU utilization statistics."""

    id: str
    name: str
    memory_total: int
    memory_free: int
    utilization_compute: int
    utilization_memory: int


class HardwareInformation(_Wire):
    """Response model for GPU information."""

    pipeline: str
    model_id: str
    gpu_info: dict[str, GPUComputeInfo]


class HardwareStats(_Wire):
    """Response model for real-time GPU statistics."""

    pipeline: str
    model_id: str
    gpu_stats: dict[str, GPUUtilizationInfo]


# --- text-to-image --------------------------------------------------------------------------------


class TextToImageParams(_Wire):
    ranges: ClassVar[dict[str, Bounds]] = {"height": SIZE, "width": SIZE, "guidance_scale": GUIDANCE,
                                           "num_inference_steps": STEPS, "num_images_per_prompt": IMAGES}
    model_id: str = Field("", description="Hugging Face model ID used for image generation.")
    loras: str = Field(
        "",
        description='A LoRA (Low-Rank Adaptation) model and its corresponding weight for image generation. '
        'Example: { "latent-consistency/lcm-lora-sdxl": 1.0, "nerijs/pixel-art-xl": 1.2}.',
    )
    prompt: str = Field(
        ...,
        description="Text prompt(s) to guide image generation. Separate multiple prompts with '|' if "
        "supported by the model.",
    )
    height: int = Field(576, description="The height in pixels of the generated image.")
    width: int = Field(1024, description="The width in pixels of the generated image.")
    guidance_scale: float = Field(
        7.5,
        description="Encourages model to generate images closely linked to the text prompt (higher values "
        "may reduce image quality).",
    )
    negative_prompt: str = Field(
        "",
        description="Text prompt(s) to guide what to exclude from image generation. Ignored if "
        "guidance_scale < 1.",
    )
    safety_check: bool = Field(
        True,
        description="Perform a safety check to estimate if generated images could be offensive or harmful.",
    )
    # Optional but not nullable: `"seed": null` is a 422 (contract 3.5), so no `None` in the type.
    seed: int = Field(  # type: ignore[assignment]
        None, description="Seed for random number generation.", json_schema_extra=_no_default)
    num_inference_steps: int = Field(
        50,
        description="Number of denoising steps. More steps usually lead to higher quality images but slower "
        "inference. Modulated by strength.",
    )
    num_images_per_prompt: int = Field(1, description="Number of images to generate per prompt.")


class Media(_Wire):
    """A media object containing information about the generated media."""

    url: str = Field(..., description="The URL where the media can be accessed.")
    seed: int = Field(..., description="The seed used to generate the media.")
    nsfw: bool = Field(..., description="Whether the media was flagged as NSFW.")


class ImageResponse(_Wire):
    """Response model for image generation."""

    images: list[Media] = Field(..., description="The generated images.")


# --- audio-to-text --------------------------------------------------------------------------------


class Chunk(_Wire):
    """A chunk of text with a timestamp."""

    timestamp: list[Any] = Field(..., description="The timestamp of the chunk.")
    text: str = Field(..., description="The text of the chunk.")


class TextResponse(_Wire):
    """Response model for text generation."""

    text: str = Field(..., description="The generated text.")
    chunks: list[Chunk] = Field(..., description="The generated text chunks.")


class AudioToTextForm(_Wire):
    """`Body_genAudioToText` (multipart/form-data, contract 3.6): the `audio` file part and the text parts."""

    audio: UploadedFile = Field(..., description="Uploaded audio file to be transcribed.")
    model_id: str = Field("", description="Hugging Face model ID used for transcription.")
    return_timestamps: str = Field(
        "true",
        description="Return timestamps for the transcribed text. Supported values: 'sentence', 'word', or a "
        "string boolean ('true' or 'false'). Default is 'true' ('sentence'). 'false' means no timestamps. "
        "'word' means word-based timestamps.",
    )
    metadata: str = Field("{}", description="Additional job information to be passed to the pipeline.")


# --- llm ------------------------------------------------------------------------------------------


class LLMMessage(_Wire):
    role: str
    content: str


class LLMRequest(_Wire):
    ranges: ClassVar[dict[str, Bounds]] = {"temperature": (0.0, 2.0), "top_p": (0.0, 1.0),
                                           "max_tokens": (None, 2**31 - 1), "top_k": (-1, 2**31 - 1)}
    messages: list[LLMMessage]
    model: str = ""
    temperature: float = 0.7
    max_tokens: int = 256
    top_p: float = 1.0
    top_k: int = -1
    stream: bool = False


class LLMTokenUsage(_Wire):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class LLMChoice(_Wire):
    index: int
    finish_reason: str = ""
    # Sent as null when unused (the non-stream response has "delta":null); no default in the wire schema.
    delta: LLMMessage | None = Field(None, json_schema_extra=_no_default)
    message: LLMMessage | None = Field(None, json_schema_extra=_no_default)


class LLMResponse(_Wire):
    id: str
    model: str
    created: int
    usage: LLMTokenUsage
    choices: list[LLMChoice]


# --- the six further batch routes (runner-contract-more-pipelines 3.8-3.13) -------------------------


class ImageToImageForm(_Wire):
    """`Body_genImageToImage` (multipart, contract 3.8)."""

    ranges: ClassVar[dict[str, Bounds]] = {"strength": (0.0, 1.0), "guidance_scale": GUIDANCE,
                                           "image_guidance_scale": GUIDANCE, "num_inference_steps": STEPS,
                                           "num_images_per_prompt": IMAGES}

    image: UploadedFile = Field(..., description="Uploaded image to modify with the pipeline.")
    prompt: str = Field(..., description="Text prompt(s) to guide image generation.")
    model_id: str = Field("", description="Hugging Face model ID used for image generation.")
    loras: str = Field("", description="A LoRA model and its weight as a JSON object (as text-to-image).")
    strength: float = Field(0.8, description="Degree of transformation applied to the reference image (0 to 1).")
    guidance_scale: float = Field(7.5, description="Encourages images closely linked to the text prompt.")
    image_guidance_scale: float = Field(1.5, description="Degree to which the image follows the input image.")
    negative_prompt: str = Field("", description="Text prompt(s) to guide what to exclude from generation.")
    safety_check: bool = Field(True, description="Estimate whether generated images could be harmful.")
    seed: int = Field(None, description="Seed for random number generation.",  # type: ignore[assignment]
                      json_schema_extra=_no_default)
    num_inference_steps: int = Field(100, description="Number of denoising steps.")
    num_images_per_prompt: int = Field(1, description="Number of images to generate per prompt.")


class ImageToVideoForm(_Wire):
    """`Body_genImageToVideo` (multipart, contract 3.9). No prompt; the model decides the frame count."""

    ranges: ClassVar[dict[str, Bounds]] = {"height": SIZE, "width": SIZE, "fps": (1, 240),
                                           "motion_bucket_id": (0, 1023), "noise_aug_strength": (0.0, 1.0),
                                           "num_inference_steps": STEPS}

    image: UploadedFile = Field(..., description="Uploaded image to generate a video from.")
    model_id: str = Field("", description="Hugging Face model ID used for video generation.")
    height: int = Field(576, description="The height in pixels of the generated video.")
    width: int = Field(1024, description="The width in pixels of the generated video.")
    fps: int = Field(6, description="The frames per second of the generated video.")
    motion_bucket_id: int = Field(127, description="Conditions the amount of motion (higher: more motion).")
    noise_aug_strength: float = Field(0.02, description="Noise added to the conditioning image.")
    safety_check: bool = Field(True, description="Estimate whether the input could be harmful.")
    seed: int = Field(None, description="Seed for random number generation.",  # type: ignore[assignment]
                      json_schema_extra=_no_default)
    num_inference_steps: int = Field(25, description="Number of denoising steps.")


class UpscaleForm(_Wire):
    """`Body_genUpscale` (multipart, contract 3.10). The output is 4x the input's width and height."""

    ranges: ClassVar[dict[str, Bounds]] = {"num_inference_steps": STEPS}

    image: UploadedFile = Field(..., description="Uploaded image to upscale.")
    prompt: str = Field(..., description="Text prompt(s) to guide upscaled image generation.")
    model_id: str = Field("", description="Hugging Face model ID used for upscaled image generation.")
    safety_check: bool = Field(True, description="Estimate whether generated images could be harmful.")
    seed: int = Field(None, description="Seed for random number generation.",  # type: ignore[assignment]
                      json_schema_extra=_no_default)
    num_inference_steps: int = Field(75, description="Number of denoising steps.")


class ImageToTextForm(_Wire):
    """`Body_genImageToText` (multipart, contract 3.11): 50 MiB file limit, messages without a period."""

    image: UploadedFile = Field(..., description="Uploaded image to transform with the pipeline.")
    prompt: str = Field("", description="Text prompt(s) to guide transformation.")
    model_id: str = Field("", description="Hugging Face model ID used for transformation.")


class SegmentAnything2Form(_Wire):
    """`Body_genSegmentAnything2` (multipart, contract 3.12): prompts are JSON arrays sent as text parts."""

    image: UploadedFile = Field(..., description="Image to segment.")
    model_id: str = Field("", description="Hugging Face model ID used for image generation.")
    point_coords: str = Field(None, description="Nx2 array of point prompts in (X,Y) pixels.",  # type: ignore[assignment]
                              json_schema_extra=_no_default)
    point_labels: str = Field(None, description="Labels for the point prompts: 1 foreground, 0 background.",  # type: ignore[assignment]
                              json_schema_extra=_no_default)
    box: str = Field(None, description="A length 4 array given as a box prompt in XYXY format.",  # type: ignore[assignment]
                     json_schema_extra=_no_default)
    mask_input: str = Field(None, description="A 1x256x256 low-resolution mask from an earlier call.",  # type: ignore[assignment]
                            json_schema_extra=_no_default)
    multimask_output: bool = Field(True, description="Return three masks for ambiguous prompts.")
    return_logits: bool = Field(True, description="Return un-thresholded mask logits instead of binary masks.")
    normalize_coords: bool = Field(True, description="Normalise coordinates to [0, 1] (input in pixels).")


class TextToSpeechParams(_Wire):
    """`TextToSpeechParams` (JSON, contract 3.13)."""

    model_id: str = Field("", description="Hugging Face model ID used for text to speech generation.")
    text: str = Field("", description="Text input for speech generation.")
    description: str = Field(
        "A male speaker delivers a slightly expressive and animated speech with a moderate speed and pitch.",
        description="Description of speaker to steer text to speech generation.")


class VideoResponse(_Wire):
    """`VideoResponse{Frames [][]Media}`: exactly one inner list, one PNG `Media` per frame (3.9)."""

    frames: list[list[Media]] = Field(..., description="The generated video frames.")


class ImageToTextResponse(_Wire):
    """`ImageToTextResponse{Text string}` (3.11)."""

    text: str = Field(..., description="The generated text.")


class MasksResponse(_Wire):
    """`MasksResponse`: each value is a *string* holding a printed nested list (3.12)."""

    masks: str = Field(..., description="The generated masks.")
    scores: str = Field(..., description="The model's confidence scores for each generated mask.")
    logits: str = Field(..., description="The raw, unnormalized predictions (logits) for the masks.")


class MediaURL(_Wire):
    """A URL from which media can be accessed."""

    url: str = Field(..., description="The URL where the media can be accessed.")


class AudioResponse(_Wire):
    """`AudioResponse{Audio MediaURL}`: a WAV in a data URL (3.13)."""

    audio: MediaURL = Field(..., description="The generated audio.")


# For model authors' own request models: the same wire conventions (unknown fields ignored).
WireModel = _Wire
