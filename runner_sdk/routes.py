"""The generate routes of the contract: path, schemas and the statuses go-livepeer can parse (4.2)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from . import schemas


@dataclass(frozen=True)
class Route:
    path: str
    operation_id: str
    summary: str
    description: str
    request_model: type[BaseModel]  # the JSON body, or the text parts of a multipart body
    response_model: type[BaseModel]
    error_statuses: tuple[int, ...]  # besides 200; every one of them carries a JSON body
    file_parts: tuple[str, ...] = ()  # required binary parts: a non-empty tuple means multipart/form-data
    body_schema_name: str | None = None  # the multipart body's component name in the OpenAPI document
    max_file_bytes: int | None = None  # per file part; larger is a 413 (contract 3.6)
    schema_error_status: int = 422  # /llm turns schema errors into 400s (Q7)
    auth_message: str = "Invalid bearer token."
    streams: bool = False

    @property
    def multipart(self) -> bool:
        return bool(self.file_parts)


TEXT_TO_IMAGE = Route(
    path="/text-to-image",
    operation_id="genTextToImage",
    summary="Text To Image",
    description="Generate images from text prompts.",
    request_model=schemas.TextToImageParams,
    response_model=schemas.ImageResponse,
    error_statuses=(400, 401, 422, 500),
)

AUDIO_TO_TEXT = Route(
    path="/audio-to-text",
    operation_id="genAudioToText",
    summary="Audio To Text",
    description="Transcribe audio files to text.",
    request_model=schemas.AudioToTextForm,
    response_model=schemas.TextResponse,
    error_statuses=(400, 401, 413, 415, 422, 500),
    file_parts=("audio",),
    body_schema_name="Body_genAudioToText",
    max_file_bytes=50 * 1024 * 1024,
)

LLM = Route(
    path="/llm",
    operation_id="genLLM",
    summary="LLM",
    description="Generate text using a language model.",
    request_model=schemas.LLMRequest,
    response_model=schemas.LLMResponse,
    error_statuses=(400, 401, 500),
    schema_error_status=400,
    auth_message="Invalid bearer token",
    streams=True,
)

# Every batch generate path go-livepeer knows. Those not served answer a 500 HTTPError instead of a 404,
# which would take go-livepeer's nil path when aiModels.json names the wrong pipeline (Q20).
LIVEPEER_GENERATE_PATHS = {
    "text-to-image": "/text-to-image",
    "image-to-image": "/image-to-image",
    "image-to-video": "/image-to-video",
    "upscale": "/upscale",
    "audio-to-text": "/audio-to-text",
    "segment-anything-2": "/segment-anything-2",
    "llm": "/llm",
    "image-to-text": "/image-to-text",
    "text-to-speech": "/text-to-speech",
    "live-video-to-video": "/live-video-to-video",
}
