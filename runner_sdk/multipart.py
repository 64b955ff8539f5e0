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

# All text parts together (contract 6.1 asks for at least 16 MiB per part: SAM2's mask_input is ~1.35 MB).
MAX_TEXT_BYTES = 16 * 1024 * 1024
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


class _FormBuilder:
    """python-multipart's callbacks: one part at a time into `form` (files spooled, text kept)."""

    def __init__(self, file_parts: tuple[str, ...], tmpdir: Path, max_file_bytes: int | None):
        self.file_parts, self.tmpdir, self.max_file_bytes = file_parts, tmpdir, max_file_bytes
        self.form = ParsedForm()
        self.count = 0
        self.text_bytes = 0
        self.field, self.value = b"", b""
        self.fh = None
        self._new_part()

    def _new_part(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.part: str | None = None
        self.text = bytearray()
        self.file: UploadedFile | None = None
        self.size, self.over, self.discard = 0, False, False

    def callbacks(self) -> dict:
        return {"on_part_begin": self.on_part_begin, "on_part_data": self.on_part_data,
                "on_part_end": self.on_part_end, "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished}

    def on_part_begin(self) -> None:
        self._new_part()
        self.count += 1
        if self.count > MAX_PARTS:
            raise MultipartError(f"more than {MAX_PARTS} parts")

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.field.lower()] = self.value
        self.field, self.value = b"", b""

    def on_headers_finished(self) -> None:
        _disposition, opts = parse_options_header(self.headers.get(b"content-disposition", b""))
        name = opts.get(b"name", b"").decode("utf-8", "replace")
        filename = opts.get(b"filename")
        self.part = name
        form = self.form
        if (filename is not None and name not in self.file_parts) or name in form.files or name in form.oversized:
            # A file the route does not read, or a repeat of one it has (the first wins, like Starlette's
            # form.get()): drained, never written to disk.
            self.discard = True
        elif name in self.file_parts:
            path = self.tmpdir / f"part-{len(form.files) + len(form.oversized)}"
            self.fh = open(path, "wb")  # noqa: SIM115 (closed in on_part_end or by close())
            self.file = UploadedFile(
                name=name, filename=filename.decode("utf-8", "replace") if filename else None,
                content_type=self.headers.get(b"content-type", b"").decode("latin-1") or None, path=path, size=0)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.discard:
            return
        chunk = data[start:end]
        if self.fh is None:
            self.text += chunk
            self.text_bytes += len(chunk)
            if self.text_bytes > MAX_TEXT_BYTES:
                raise MultipartError(f"text parts are over {MAX_TEXT_BYTES} bytes in all (at {self.part!r})")
            return
        self.size += len(chunk)
        if self.over:
            return
        if self.max_file_bytes is not None and self.size > self.max_file_bytes:
            self.over = True  # keep draining, stop writing
            self.fh.truncate(0)
            return
        self.fh.write(chunk)

    def on_part_end(self) -> None:
        if self.discard:
            return
        if self.fh is not None:
            self.close()
            if self.over:
                self.form.oversized.append(self.part)
            else:
                self.file.size = self.size
                self.form.files[self.part] = self.file
        elif self.part not in self.form.fields:
            self.form.fields[self.part] = self.text.decode("utf-8", "replace")

    def close(self) -> None:
        if self.fh is not None and not self.fh.closed:
            self.fh.close()
        self.fh = None


async def parse_multipart(request: Request, file_parts: tuple[str, ...], tmpdir: Path,
                          max_file_bytes: int | None) -> ParsedForm:
    """Parse a multipart/form-data body as it streams in.

    Args:
        request: the request; its body is consumed (to the end even after an error, so the client reads
            the answer). file_parts: the route's file part names. tmpdir: where they are spooled.
        max_file_bytes: per file part; a larger one is listed in `oversized` (the caller answers 413).
    Returns:
        ParsedForm: text parts, spooled files, oversized file part names.
    Raises:
        MultipartError: no boundary, too many parts, text parts over 16 MiB in all, or a malformed body (a 400).
    """
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise MultipartError("multipart body without a boundary")
    builder = _FormBuilder(file_parts, tmpdir, max_file_bytes)
    parser = MultipartParser(boundary, builder.callbacks())
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
        builder.close()
    if error is not None:
        raise error
    return builder.form
