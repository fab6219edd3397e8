"""Request media types of DICOMweb: multipart/related bodies and Accept headers.

* :class:`MultipartRelatedParser` splits a STOW-RS body (PS3.18 8.6.1.2) into
  parts while reading the request stream: each part is held in memory up to
  ``SPOOL_BYTES`` and spooled to a file under ``PACS_TEMP_DIR`` beyond that, so
  a multi-gigabyte study never sits in memory.
* :func:`accept_parse` turns an Accept header into ``AcceptedType`` items
  (media type, ``type``/``transfer-syntax`` parameters, quality), quoted or not
  (PS3.18 8.7.3.5).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from pacs.exceptions import OutOfResources
from pacs.services.config import archive_config_get
from pacs.storage import free_space_check, write_failure_status

CHUNK_BYTES = 1024 * 1024
SPOOL_BYTES = 32 * 1024 * 1024
HEAD_BYTES = 64 * 1024  # of a part that cannot be kept: enough for its UIDs in the failure report

logger = logging.getLogger(__name__)
_PARAM_RE = re.compile(r';\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,]*)')


def media_type_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``multipart/related; type="application/dicom"`` into the type and its parameters."""
    main, _, rest = value.partition(";")
    params = {}
    for name, raw in _PARAM_RE.findall(";" + rest):
        raw = raw.strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = raw[1:-1]
        params[name.lower()] = raw.strip()
    return main.strip().lower(), params


@dataclass
class AcceptedType:
    """One item of an Accept header."""

    media_type: str  # e.g. multipart/related, application/dicom+json, image/jpeg
    params: dict[str, str] = field(default_factory=dict)
    quality: float = 1.0

    @property
    def part_type(self) -> str:
        """The ``type`` parameter of multipart/related (lower case), '' when absent."""
        return self.params.get("type", "").lower()

    @property
    def transfer_syntax(self) -> str:
        return self.params.get("transfer-syntax", "")


def _split_accept(header: str) -> list[str]:
    """Split on commas that are not inside quotes."""
    items, current, quoted = [], [], False
    for char in header:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            items.append("".join(current))
            current = []
        else:
            current.append(char)
    items.append("".join(current))
    return [item.strip() for item in items if item.strip()]


def accept_parse(header: str | None) -> list[AcceptedType]:
    """Accept header items sorted by quality (highest first); empty header -> ``[]``.

    Raises
    ------
    ParseError
        A ``q`` value that is not a number.
    """
    result = []
    for item in _split_accept(header or ""):
        media_type, params = media_type_params(item)
        quality = 1.0
        if "q" in params:
            try:
                quality = float(params.pop("q"))
            except ValueError:
                raise ParseError(f"Accept header: invalid q value in {item!r}") from None
        result.append(AcceptedType(media_type=media_type, params=params, quality=quality))
    return sorted(result, key=lambda accepted: -accepted.quality)


@dataclass
class Part:
    """One part of a multipart/related body: headers and the content (bytes or a spooled file).

    A part that could not be kept (archive volume below its free-space floor,
    or the spool write failed) has no content but ``error`` - its failure
    reason and message - and ``head``, its first bytes, for its UIDs.
    """

    headers: dict[str, str]
    data: bytes | None = None
    path: Path | None = None
    size: int = 0
    error: tuple[int, str] | None = None
    head: bytes = b""

    @property
    def content_type(self) -> str:
        return media_type_params(self.headers.get("content-type", ""))[0]

    def source(self) -> bytes | Path:
        return self.data if self.data is not None else self.path  # type: ignore[return-value]

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class _PartWriter:
    """Collects a part's bytes in memory, moving to a temp file past ``SPOOL_BYTES``.

    The archive's free-space floor is checked before a part starts to spool
    (not after a big write); a volume below it, or a failed spool write (disk
    full), makes the part fail with 0xA700 / 0x0110: its temp file is removed,
    the rest of it is read and dropped, and the next part is stored normally.
    """

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
        self.buffer = bytearray()
        self.file = None
        self.path: Path | None = None
        self.size = 0
        self.head = b""
        self.error: tuple[int, str] | None = None

    def write(self, data: bytes | memoryview) -> None:
        if not data:
            return
        self.size += len(data)
        if self.error is not None:
            return
        try:
            if self.file is None and len(self.buffer) + len(data) > SPOOL_BYTES:
                self.head = bytes(self.buffer[:HEAD_BYTES] if self.buffer else data[:HEAD_BYTES])
                free_space_check(archive_config_get().min_free_mb)
                Path(settings.PACS_TEMP_DIR).mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(prefix="stow-", suffix=".part", dir=settings.PACS_TEMP_DIR)
                self.file = os.fdopen(fd, "wb")
                self.path = Path(name)
                self.file.write(self.buffer)
                self.buffer = bytearray()
            if self.file is not None:
                self.file.write(data)
            else:
                self.buffer += data
        except OutOfResources as exc:
            self._fail(exc.dicom_status, exc.message)
        except OSError as exc:
            self._fail_write(exc)

    def _fail_write(self, exc: OSError) -> None:
        self._fail(write_failure_status(exc), f"Cannot spool the part: {exc.strerror or exc}")

    def _fail(self, status: int, message: str) -> None:
        logger.warning("stow-rs part refused status=0x%04X bytes_so_far=%d reason=%s", status, self.size, message)
        self.error = (status, message)
        self.buffer = bytearray()
        self._discard_file()

    def _discard_file(self) -> None:
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass  # buffered bytes that cannot be flushed: the file goes anyway
            self.file = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None

    def close(self) -> Part:
        if self.error is None and self.file is not None:
            try:
                self.file.close()
            except OSError as exc:  # the last buffered bytes did not fit either
                self._fail_write(exc)
            else:
                return Part(headers=self.headers, path=self.path, size=self.size)
        if self.error is not None:
            return Part(headers=self.headers, size=self.size, error=self.error, head=self.head)
        return Part(headers=self.headers, data=bytes(self.buffer), size=self.size)


def _headers_parse(block: bytes) -> dict[str, str]:
    headers = {}
    for line in block.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def multipart_iter(stream, boundary: str) -> Iterator[Part]:
    """Yield the parts of a multipart body read from *stream* in chunks.

    Raises
    ------
    ParseError
        No opening boundary, a part without a header block, or a body cut short.
    """
    opening = b"--" + boundary.encode("latin-1")
    delimiter = b"\r\n" + opening
    buffer = bytearray()
    eof = False

    def fill() -> bool:
        nonlocal eof
        if eof:
            return False
        chunk = stream.read(CHUNK_BYTES)
        if not chunk:
            eof = True
            return False
        buffer.extend(chunk)
        return True

    # Preamble up to and including the first boundary line.
    while True:
        index = buffer.find(opening)
        if index >= 0:
            del buffer[: index + len(opening)]
            break
        if not fill():
            raise ParseError("multipart body has no opening boundary")
    while True:
        # After a boundary: "--" closes the body, otherwise CRLF and a header block.
        while len(buffer) < 2 and fill():
            pass
        if buffer[:2] == b"--":
            return
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end >= 0:
                break
            if not fill():
                raise ParseError("multipart part has no header block (truncated body)")
        headers = _headers_parse(bytes(buffer[:end]).lstrip(b" \t\r\n"))
        del buffer[: end + 4]
        writer = _PartWriter(headers)
        keep = len(delimiter) - 1
        while True:
            index = buffer.find(delimiter)
            if index >= 0:
                writer.write(memoryview(buffer)[:index])
                del buffer[: index + len(delimiter)]
                break
            if len(buffer) > keep:
                writer.write(memoryview(buffer)[: len(buffer) - keep])
                del buffer[: len(buffer) - keep]
            if not fill():
                part = writer.close()
                part.discard()
                raise ParseError("multipart body ended inside a part (no closing boundary)")
        yield writer.close()


class MultipartRelatedParser(BaseParser):
    """DRF parser for ``multipart/related`` (STOW-RS); ``request.data`` is a part iterator."""

    media_type = "multipart/related"

    def parse(self, stream, media_type=None, parser_context=None):
        _, params = media_type_params(media_type or "")
        boundary = params.get("boundary")
        if not boundary:
            raise ParseError("multipart/related request without a boundary parameter")
        part_type = params.get("type", "").lower()
        if stream is None:
            raise ParseError("empty multipart/related body")
        return {"type": part_type, "parts": multipart_iter(stream, boundary)}
