"""Typed file parts of a multipart request.

A route's form model declares its file parts as fields of type `UploadedFile` (`image: UploadedFile`); the
SDK spools each part to disk while it arrives (never held whole in memory, contract 6.1) and validates the
model with the parts in place, so `predict` reads `request.image.path` with its type known. In the OpenAPI
document such a field is `{"type": "string", "format": "binary"}`, as FastAPI writes an `UploadFile`.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import core_schema


@dataclass
class UploadedFile:
    """One file part, spooled to a temporary file that lives until the request's answer is sent.

    Attributes:
        name: the form field name (e.g. "audio", "image").
        filename: the client's file name, or None when it sent none.
        content_type: the part's Content-Type header, or None.
        path: where the bytes are on disk (deleted after the request).
        size: the part's length in bytes.
    """

    name: str
    filename: str | None
    content_type: str | None
    path: Path
    size: int

    def read_bytes(self) -> bytes:
        """The whole part. Prefer `path` for large files (audio, video)."""
        return self.path.read_bytes()

    @classmethod
    def __get_pydantic_core_schema__(cls, _source: Any, _handler: Any) -> core_schema.CoreSchema:
        # Only the SDK builds these (from the parsed body): validation is an isinstance check.
        return core_schema.is_instance_schema(cls)

    @classmethod
    def __get_pydantic_json_schema__(cls, _schema: Any, _handler: Any) -> dict[str, Any]:
        return {"type": "string", "format": "binary"}


def file_fields(model: type[BaseModel]) -> tuple[str, ...]:
    """Names of `model`'s fields typed `UploadedFile`, in declaration order (the route's file parts)."""
    hints = typing.get_type_hints(model)
    return tuple(name for name in model.model_fields if hints.get(name) is UploadedFile)
