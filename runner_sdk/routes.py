"""The generate routes of the contract: path, schemas and the statuses go-livepeer can parse (4.2, 4.5).

A `Route` is everything the SDK needs to serve one pipeline's POST: which model parses the body, which model
the 200 carries, which error statuses go-livepeer's generated client types, and the few per-route message
spellings upstream has (a trailing period or not). The pipeline table (`pipelines.py`) names one per
go-livepeer batch pipeline; an author may build their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from pydantic import BaseModel

from . import schemas
from .uploads import file_fields

# File parts at most this large unless a route says otherwise (a bigger one is a 413; contract 3.6, 3.11).
MAX_FILE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class Route:
    """One POST route of the contract.

    Attributes:
        path: the URL path, e.g. "/text-to-image".
        operation_id: the OpenAPI operationId go-livepeer's client is generated from (e.g. "genTextToImage").
        request_model: the JSON body, or for multipart the whole form (file parts typed `UploadedFile`).
        response_model: the 200 body.
        error_statuses: statuses besides 200 that go-livepeer's parser types; each carries a JSON body.
        max_file_bytes: per file part; larger is a 413 (None: no limit).
        schema_error_status: 422 (FastAPI's list) or 400 for /llm, which turns schema errors into 400s (Q7).
        auth_message: the 401 message (upstream spells it with or without a period per route).
        model_field: the request field carrying the caller's model id; a non-empty value that differs from
            MODEL_ID is a 400 before anything else runs (contract 3.5-3.13). None: no such field.
        full_stop: whether the SDK's model-mismatch and file-size messages end with a period (upstream's do
            not on /llm, /image-to-text and /text-to-speech; contract 4.4, 4.7).
        streams: the route may answer Server-Sent Events (the request's `stream` field asks for it).
    """

    path: str
    operation_id: str
    summary: str
    description: str
    request_model: type[BaseModel]
    response_model: type[BaseModel]
    error_statuses: tuple[int, ...] = (400, 401, 422, 500)
    max_file_bytes: int | None = MAX_FILE_BYTES
    schema_error_status: int = 422
    auth_message: str = "Invalid bearer token."
    model_field: str | None = "model_id"
    full_stop: bool = True
    streams: bool = False

    @cached_property
    def file_parts(self) -> tuple[str, ...]:
        """The request model's `UploadedFile` fields: non-empty means multipart/form-data."""
        return file_fields(self.request_model)

    @property
    def multipart(self) -> bool:
        return bool(self.file_parts)

    @property
    def body_schema_name(self) -> str:
        """The multipart body's component name in the OpenAPI document (FastAPI's `Body_<operationId>`)."""
        return f"Body_{self.operation_id}"

    def mismatch_message(self, configured: str, requested: str) -> str:
        """The 400 text when a request names another model than the one loaded (contract 4.4, 4.7)."""
        text = f"pipeline configured with {configured} but called with {requested}"
        return text + "." if self.full_stop else text

    @property
    def too_large_message(self) -> str:
        """The 413 text for a file part over `max_file_bytes` (contract 3.6, 3.11)."""
        return "File size exceeds limit." if self.full_stop else "File size exceeds limit"


TEXT_TO_IMAGE = Route("/text-to-image", "genTextToImage", "Text To Image", "Generate images from text prompts.",
                      schemas.TextToImageParams, schemas.ImageResponse)
IMAGE_TO_IMAGE = Route("/image-to-image", "genImageToImage", "Image To Image",
                       "Apply image transformations to a provided image.", schemas.ImageToImageForm,
                       schemas.ImageResponse, max_file_bytes=None)
IMAGE_TO_VIDEO = Route("/image-to-video", "genImageToVideo", "Image To Video",
                       "Generate a video from a provided image.", schemas.ImageToVideoForm, schemas.VideoResponse,
                       max_file_bytes=None)
UPSCALE = Route("/upscale", "genUpscale", "Upscale", "Upscale an image by increasing its resolution.",
                schemas.UpscaleForm, schemas.ImageResponse, max_file_bytes=None)
AUDIO_TO_TEXT = Route("/audio-to-text", "genAudioToText", "Audio To Text", "Transcribe audio files to text.",
                      schemas.AudioToTextForm, schemas.TextResponse,
                      error_statuses=(400, 401, 413, 415, 422, 500))
SEGMENT_ANYTHING_2 = Route("/segment-anything-2", "genSegmentAnything2", "Segment Anything 2",
                           "Segment objects in an image.", schemas.SegmentAnything2Form, schemas.MasksResponse,
                           max_file_bytes=None)
LLM = Route("/llm", "genLLM", "LLM", "Generate text using a language model.", schemas.LLMRequest,
            schemas.LLMResponse, error_statuses=(400, 401, 500), schema_error_status=400,
            auth_message="Invalid bearer token", model_field="model", full_stop=False, streams=True)
IMAGE_TO_TEXT = Route("/image-to-text", "genImageToText", "Image To Text", "Transform image files to text.",
                      schemas.ImageToTextForm, schemas.ImageToTextResponse,
                      error_statuses=(400, 401, 413, 422, 500), auth_message="Invalid bearer token",
                      full_stop=False)
TEXT_TO_SPEECH = Route("/text-to-speech", "genTextToSpeech", "Text To Speech",
                       "Generate a text-to-speech audio file.", schemas.TextToSpeechParams, schemas.AudioResponse,
                       full_stop=False)
