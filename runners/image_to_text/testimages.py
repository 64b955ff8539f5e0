"""Test and benchmark inputs for the image routes: small real images, and multipart bodies built the way
go-livepeer's writers build them (`ai/worker/multipart.go`: the file part first, `application/octet-stream`,
filename `image`; then only the text parts the caller set)."""

from __future__ import annotations

import io
import secrets


def png(width: int = 64, height: int = 48, colour: tuple[int, int, int] = (200, 60, 30)) -> bytes:
    """A PNG of a coloured square on a gradient (real bytes for Pillow to decode).

    Args:
        width, height: the image size. colour: the square's RGB.
    Returns:
        The PNG file's bytes.
    """
    from PIL import Image, ImageDraw

    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    ImageDraw.Draw(image).rectangle((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=colour)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def golivepeer_multipart(image: bytes, fields: dict[str, str] | None = None, part: str = "image",
                         filename: str = "image") -> tuple[bytes, dict[str, str]]:
    """A multipart body as go-livepeer writes it: the file part first, then the given text parts in order.

    Args:
        image: the file part's bytes. fields: text parts (only those a caller set). part: the file field.
        filename: the file part's filename (go-livepeer sends the user's or the literal `image`).
    Returns:
        (body, headers) for `httpx.post(url, content=body, headers=headers)`.
    """
    boundary = secrets.token_hex(16)
    chunks = [f'--{boundary}\r\nContent-Disposition: form-data; name="{part}"; filename="{filename}"\r\n'
              "Content-Type: application/octet-stream\r\n\r\n".encode(), image, b"\r\n"]
    for name, value in (fields or {}).items():
        chunks += [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode(),
                   value.encode(), b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), {"Content-Type": f"multipart/form-data; boundary={boundary}"}
