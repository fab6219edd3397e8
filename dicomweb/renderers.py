"""Response media types of DICOMweb (PS3.18 8.7): DICOM JSON and multipart/related.

* :class:`DicomJSONRenderer` renders ``application/dicom+json`` (and plain
  ``application/json`` for browsers and error bodies).
* :func:`multipart_stream` yields a ``multipart/related`` body part by part,
  each part's content read from disk in 1 MiB chunks, so a study of any size
  is streamed without being held in memory.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rest_framework.renderers import BaseRenderer, JSONRenderer

READ_CHUNK = 1024 * 1024
# Whole files up to this size are read in one call: fewer syscalls, same memory bound.
READ_WHOLE = 8 * 1024 * 1024


class DicomJSONRenderer(JSONRenderer):
    """``application/dicom+json`` (PS3.18 F.2)."""

    media_type = "application/dicom+json"
    format = "dicom+json"
    charset = None


class PlainJSONRenderer(JSONRenderer):
    """Plain JSON for the same payloads (browsers, error bodies)."""

    media_type = "application/json"


class PassthroughRenderer(BaseRenderer):
    """Placeholder renderer for views that build their own (streamed) responses."""

    media_type = "*/*"
    format = "bin"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, (bytes, str)):
            return data
        return json.dumps(data).encode()


@dataclass
class OutPart:
    """One part of a multipart response: a file on disk, a file range, or bytes."""

    content_type: str
    path: Path | None = None
    data: bytes | Iterable[bytes] | None = None
    offset: int = 0
    length: int | None = None
    location: str = ""


def boundary_new() -> str:
    return uuid.uuid4().hex


def multipart_content_type(part_type: str, boundary: str, transfer_syntax: str = "") -> str:
    value = f'multipart/related; type="{part_type}"; boundary={boundary}'
    if transfer_syntax:
        value += f"; transfer-syntax={transfer_syntax}"
    return value


def _file_chunks(path: Path, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        if offset:
            fh.seek(offset)
        if length is None:
            while chunk := fh.read(READ_WHOLE):
                yield chunk
            return
        remaining = length
        while remaining > 0:
            chunk = fh.read(min(READ_WHOLE, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


def multipart_stream(parts: Iterable[OutPart], boundary: str) -> Iterator[bytes]:
    """Yield a multipart/related body (RFC 2387): each part with its Content-Type."""
    marker = b"--" + boundary.encode()
    for part in parts:
        head = marker + b"\r\nContent-Type: " + part.content_type.encode()
        if part.location:
            head += b"\r\nContent-Location: " + part.location.encode()
        yield head + b"\r\n\r\n"
        if part.path is not None:
            yield from _file_chunks(part.path, part.offset, part.length)
        elif isinstance(part.data, (bytes, bytearray, memoryview)):
            yield bytes(part.data)
        elif part.data is not None:
            yield from part.data
        yield b"\r\n"
    yield marker + b"--\r\n"
