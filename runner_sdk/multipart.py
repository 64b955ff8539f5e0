"""Streaming multipart/form-data parsing with a per-file size limit.

The route's file parts (the first of each name) are written to a temporary directory as they arrive, so an
upload is never held whole in memory; any other file part is drained without being stored. A file over the
limit stops being written but the body is still drained, so Go's HTTP client reads our 413 instead of a
broken pipe (Q16). Text parts are small and kept as strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from .uploads import UploadedFile

MAX_TEXT_PART_BYTES = 1024 * 1024
MAX_PARTS = 64


class MultipartError(Exception):
    pass


@dataclass
class ParsedForm:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)
    oversized: list[str] = field(default_factory=list)  # file parts that exceeded the limit


def is_multipart(request: Request) -> bool:
    ctype, _ = parse_options_header(request.headers.get("content-type", ""))
    return ctype == b"multipart/form-data"


async def parse_multipart(request: Request, file_parts: tuple[str, ...], tmpdir: Path,
                          max_file_bytes: int | None) -> ParsedForm:
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise MultipartError("multipart body without a boundary")

    form = ParsedForm()
    state: dict = {"headers": {}, "field": b"", "value": b"", "part": None}

    def on_part_begin() -> None:
        state.update(headers={}, part=None, text=bytearray(), fh=None, size=0, over=False, discard=False)
        state["count"] = state.get("count", 0) + 1
        if state["count"] > MAX_PARTS:
            raise MultipartError(f"more than {MAX_PARTS} parts")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        disposition, opts = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name = opts.get(b"name", b"").decode("utf-8", "replace")
        filename = opts.get(b"filename")
        state["part"] = name
        if (filename is not None and name not in file_parts) or name in form.files or name in form.oversized:
            # A file the route does not read, or a repeat of one it has (the first wins, like Starlette's
            # form.get()): drained, never written to disk.
            state["discard"] = True
        elif name in file_parts:
            index = len(form.files) + len(form.oversized)
            path = tmpdir / f"part-{index}"
            state["fh"] = open(path, "wb")  # noqa: SIM115 (closed in on_part_end or by the caller's cleanup)
            state["file"] = UploadedFile(
                name=name, filename=filename.decode("utf-8", "replace") if filename else None,
                content_type=state["headers"].get(b"content-type", b"").decode("latin-1") or None,
                path=path, size=0)

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["discard"]:
            return
        chunk = data[start:end]
        if state["fh"] is None:
            state["text"] += chunk
            if len(state["text"]) > MAX_TEXT_PART_BYTES:
                raise MultipartError(f"text part {state['part']!r} is over {MAX_TEXT_PART_BYTES} bytes")
            return
        state["size"] += len(chunk)
        if state["over"]:
            return
        if max_file_bytes is not None and state["size"] > max_file_bytes:
            state["over"] = True  # keep draining, stop writing
            state["fh"].truncate(0)
            return
        state["fh"].write(chunk)

    def on_part_end() -> None:
        name = state["part"]
        if state["discard"]:
            return
        if state["fh"] is not None:
            state["fh"].close()
            if state["over"]:
                form.oversized.append(name)
            else:
                state["file"].size = state["size"]
                form.files[name] = state["file"]
        elif name not in form.fields:
            form.fields[name] = state["text"].decode("utf-8", "replace")

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_part_data": on_part_data, "on_part_end": on_part_end,
        "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
    })
    error: MultipartError | None = None
    try:
        async for chunk in request.stream():
            if error is not None:
                continue  # drain the rest so the client reads our answer
            try:
                parser.write(chunk)
            except MultipartError as exc:
                error = exc
            except Exception as exc:  # python-multipart's own parse errors
                error = MultipartError(f"malformed multipart body: {exc}")
        if error is None:
            parser.finalize()
    finally:
        if state.get("fh") is not None and not state["fh"].closed:
            state["fh"].close()
    if error is not None:
        raise error
    return form
