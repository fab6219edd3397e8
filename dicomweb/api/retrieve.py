"""WADO-RS (PS3.18 10.4): instances, bulk data, frames, rendered, thumbnails (metadata: :mod:`.metadata`).

Instances are streamed from disk as ``multipart/related; type="application/dicom"``
part by part; only a transcoded instance is built in memory (one at a time).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

from django.http import HttpResponse, StreamingHttpResponse
from pydicom.encaps import generate_frames

from dicomweb import media
from dicomweb.api import schema
from dicomweb.api.base import (
    DicomWebView,
    bad_param,
    instance_url,
    int_param,
    not_acceptable,
)
from dicomweb.dicomjson import pixel_element_locate
from dicomweb.parsers import accept_parse
from dicomweb.renderers import (
    OutPart,
    boundary_new,
    multipart_content_type,
    multipart_stream,
)
from pacs import selectors, storage
from pacs.selectors import NotFound, StoredInstance
from pacs.services import encoders, rendering, transcode

logger = logging.getLogger("dicomweb")


def _accepted(request):
    return accept_parse(request.META.get("HTTP_ACCEPT", ""))


def _stored(kwargs) -> list[StoredInstance]:
    return selectors.stored_instances(
        study_instance_uid=kwargs["study"],
        series_instance_uid=kwargs.get("series"),
        sop_instance_uid=kwargs.get("instance"),
    )


# --- Instances ----------------------------------------------------------------------


def _header(item: StoredInstance):
    from pydicom import dcmread

    return dcmread(storage.absolute_path(item.file_path), stop_before_pixels=True)


def _instance_targets(request, instances: list[StoredInstance]) -> tuple[list[str], bool]:
    """The transfer syntax of each instance and whether the answer is multipart (else 406).

    Each instance gets the first acceptable representation it can be delivered
    in: PS3.18 8.7.8.2 lets the Selected Transfer Syntax differ per part, so a
    study of 8-bit and 16-bit images asked for as ``JPEG Baseline, else
    Explicit VR LE`` gets both.  A compressed target is checked against each
    instance's pixel format (its header) before the first byte is sent.
    """
    choices = media.dicom_choices(_accepted(request))
    if len(instances) > 1:
        choices = [c for c in choices if c.multipart]
    if not choices:
        raise not_acceptable(
            'Acceptable: multipart/related; type="application/dicom" (optionally with transfer-syntax).'
        )
    targets, chosen = [], []
    for item in instances:
        header, reasons = None, []
        for choice in choices:
            wanted = choice.transfer_syntax
            if wanted in ("*", item.transfer_syntax_uid):
                targets.append(item.transfer_syntax_uid)
                chosen.append(choice)
                break
            if not transcode.can_transcode(item.transfer_syntax_uid, wanted):
                reasons.append(f"{item.transfer_syntax_uid} cannot be transcoded to {wanted}")
                continue
            if item.rows and wanted not in media.NATIVE:
                header = header if header is not None else _header(item)
                try:
                    transcode.transcode_check(header, wanted)
                except transcode.TranscodeError as exc:
                    reasons.append(exc.message)
                    continue
            targets.append(wanted)
            chosen.append(choice)
            break
        else:
            raise not_acceptable(f"Instance {item.sop_instance_uid}: {'; '.join(reasons)}")
    return targets, chosen[0].multipart or len(instances) > 1


def _instance_part(item: StoredInstance, target: str) -> OutPart:
    path = storage.absolute_path(item.file_path)
    if target in ("*", item.transfer_syntax_uid):
        return OutPart(f"application/dicom; transfer-syntax={item.transfer_syntax_uid}", path=path)

    def encoded() -> Iterator[bytes]:
        yield transcode.dataset_encode(transcode.instance_transcode(path, target))

    return OutPart(f"application/dicom; transfer-syntax={target}", data=encoded())


class InstanceRetrieveView(DicomWebView):
    """Retrieve Study/Series/Instance (PS3.18 10.4.1.1.1): DICOM instances in multipart/related."""

    @schema.retrieve
    def get(self, request, **kwargs):
        instances = _stored(kwargs)
        targets, multipart = _instance_targets(request, instances)
        if not multipart:
            part = _instance_part(instances[0], targets[0])
            body = part.path.open("rb") if part.path else part.data
            return StreamingHttpResponse(body, content_type=part.content_type)
        boundary = boundary_new()
        parts = (_instance_part(item, target) for item, target in zip(instances, targets, strict=True))
        # One syntax for every part goes in the header too; mixed ones only per part.
        single = targets[0] if len(set(targets)) == 1 else ""
        content_type = multipart_content_type("application/dicom", boundary, single)
        response = StreamingHttpResponse(multipart_stream(parts, boundary), content_type=content_type)
        logger.info("wado-rs retrieve instances=%d transfer_syntax=%s", len(instances), single or "mixed")
        return response


# --- Frames and bulk data -----------------------------------------------------------

_FRAMES_RE = re.compile(r"^\d{1,6}(,\d{1,6})*$")


def _frame_numbers(raw: str) -> list[int]:
    if not _FRAMES_RE.match(raw or ""):
        raise bad_param("frames", f"{raw[:40]!r} is not a frame list such as 1 or 1,3,5")
    numbers = [int(n) for n in raw.split(",")]
    if any(n < 1 for n in numbers):
        raise bad_param("frames", "frame numbers start at 1")
    return numbers


def _frame_parts(item: StoredInstance, numbers: list[int] | None, choices: list[media.Choice]) -> list[OutPart]:
    """Parts for the requested frames (``None`` = all) in the first deliverable representation."""
    path = storage.absolute_path(item.file_path)
    ds, pixel = pixel_element_locate(path)
    if pixel is None:
        raise NotFound(f"Instance {item.sop_instance_uid} has no pixel data")
    count = max(int(ds.get("NumberOfFrames", 1) or 1), 1)
    numbers = numbers or list(range(1, count + 1))
    missing = [n for n in numbers if n > count]
    if missing:
        raise NotFound(f"Frame {missing[0]} does not exist (the instance has {count})")
    stored = item.transfer_syntax_uid
    stored_type = media.media_type_for(stored)
    reasons: list[str] = []
    for choice in choices:
        as_stored = choice.transfer_syntax in ("*", stored) and (
            choice.part_type in ("*", "image/*", "video/*", stored_type)
            or (choice.part_type == "application/octet-stream" and stored in media.NATIVE)
        )
        if as_stored and stored in (media.EXPLICIT_LE, media.IMPLICIT_LE) and pixel["length"] != 0xFFFFFFFF:
            size = _frame_size(ds)
            if size and size * count <= pixel["length"]:
                return [
                    OutPart(f"application/octet-stream; transfer-syntax={media.EXPLICIT_LE}", path=path,
                            offset=pixel["value_offset"] + (n - 1) * size, length=size)
                    for n in numbers
                ]
        if as_stored and stored not in media.NATIVE:
            return _encapsulated_parts(path, numbers, count, stored)
        native_wanted = choice.part_type in ("application/octet-stream", "*") and choice.transfer_syntax in (
            media.EXPLICIT_LE, "*")
        if native_wanted:
            return [
                OutPart(f"application/octet-stream; transfer-syntax={media.EXPLICIT_LE}",
                        data=_lazy(_native_frame, path=path, frame=n))
                for n in numbers
            ]
        target = choice.transfer_syntax
        if target == "*" or target not in media.FRAME_MEDIA_TYPES:
            target = media.MEDIA_TYPE_DEFAULT_SYNTAX.get(choice.part_type, "")
        if not target or media.FRAME_MEDIA_TYPES.get(target) != choice.part_type:
            continue
        try:
            transcode.transcode_check(ds, target)
        except transcode.TranscodeError as exc:
            reasons.append(exc.message)
            continue
        return [
            OutPart(f"{choice.part_type}; transfer-syntax={target}",
                    data=_lazy(_encoded_frame, path=path, header=ds, frame=n, count=count, target=target))
            for n in numbers
        ]
    raise not_acceptable(
        f"Frames stored as {stored} cannot be delivered in the requested media types"
        + (f" ({'; '.join(reasons)})" if reasons else "")
        + '; try multipart/related; type="application/octet-stream"'
    )


def _lazy(function, **kwargs) -> Iterator[bytes]:
    yield function(**kwargs)


def _native_frame(*, path, frame: int) -> bytes:
    """One frame decoded to native little-endian bytes (colour as RGB), PS3.18 8.7.3.3.2."""
    try:
        arr = rendering.frame_array(path, frame)
    except Exception as exc:
        raise transcode.TranscodeError(f"Pixel data cannot be decoded: {exc.__class__.__name__}: {exc}") from exc
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return arr.tobytes()


def _encoded_frame(*, path, header, frame: int, count: int, target: str) -> bytes:
    """One frame in a compressed *target* syntax: only that frame is decoded and encoded."""
    source = str(header.file_meta.get("TransferSyntaxUID", media.EXPLICIT_LE))
    try:
        arr = rendering.frame_array(path, frame, frames=count)
        return encoders.frame_encode(arr, header, target, source_ts=source)
    except encoders.EncodingNotAllowed as exc:
        raise transcode.TranscodeError(str(exc)) from exc
    except Exception as exc:
        raise transcode.TranscodeError(f"Frame {frame} cannot be encoded: {exc.__class__.__name__}: {exc}") from exc


def _frame_size(ds) -> int:
    bits = int(ds.get("BitsAllocated", 0) or 0)
    if bits % 8:
        return 0
    return int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1) * bits // 8


def _encapsulated_parts(path, numbers: list[int], count: int, stored: str) -> list[OutPart]:
    from pydicom import dcmread

    value = dcmread(path).PixelData
    frames = list(generate_frames(value, number_of_frames=count))
    content_type = f"{media.media_type_for(stored)}; transfer-syntax={stored}"
    return [OutPart(content_type, data=frames[n - 1]) for n in numbers]


class FrameRetrieveView(DicomWebView):
    """Retrieve frames (PS3.18 10.4.1.1.4): native or compressed pixel data per frame."""

    @schema.frames
    def get(self, request, **kwargs):
        numbers = _frame_numbers(kwargs["frames"])
        item = _stored(kwargs)[0]
        choices = media.frame_choices(_accepted(request))
        if not choices:
            raise not_acceptable('Acceptable: multipart/related; type="application/octet-stream" or an image type')
        parts = _frame_parts(item, numbers, choices)
        boundary = boundary_new()
        part_type = parts[0].content_type.split(";")[0]
        return StreamingHttpResponse(
            multipart_stream(parts, boundary), content_type=multipart_content_type(part_type, boundary)
        )


_TAG_RE = re.compile(r"^[0-9A-Fa-f]{8}$")


class BulkDataView(DicomWebView):
    """Retrieve bulk data (PS3.18 10.4.1.1.5) named by the BulkDataURI of the metadata."""

    @schema.bulkdata
    def get(self, request, **kwargs):
        tag_text = kwargs["tag"]
        if not _TAG_RE.match(tag_text):
            raise bad_param("tag", f"{tag_text[:20]!r} is not an 8-digit hex tag")
        tag = int(tag_text, 16)
        item = _stored(kwargs)[0]
        boundary = boundary_new()
        if tag in (0x7FE00010, 0x7FE00008, 0x7FE00009):
            choices = media.frame_choices(_accepted(request)) or [media.Choice("application/octet-stream", "*")]
            parts = _frame_parts(item, None, choices)
            if len(parts) > 1 and all(p.path for p in parts):
                # Native pixel data: one part with the whole value.
                first = parts[0]
                parts = [OutPart(first.content_type, path=first.path, offset=first.offset,
                                 length=sum(p.length or 0 for p in parts))]
        else:
            from pydicom import dcmread

            ds = dcmread(storage.absolute_path(item.file_path), stop_before_pixels=True)
            if tag not in ds or ds[tag].VR not in ("OB", "OD", "OF", "OL", "OV", "OW", "UN"):
                raise NotFound(f"Instance {item.sop_instance_uid} has no bulk data element {tag_text}")
            parts = [OutPart("application/octet-stream", data=bytes(ds[tag].value or b""))]
        part_type = parts[0].content_type.split(";")[0]
        return StreamingHttpResponse(
            multipart_stream(parts, boundary), content_type=multipart_content_type(part_type, boundary)
        )


# --- Rendered and thumbnails --------------------------------------------------------


def _render_media_type(request) -> str:
    wanted = request.query_params.get("accept") or ""
    candidates = [wanted] if wanted else [a.media_type for a in _accepted(request)] or ["image/jpeg"]
    for candidate in candidates:
        candidate = candidate.split(";")[0].strip().lower()
        if candidate in ("image/jpeg", "image/png"):
            return candidate
        if candidate in ("*/*", "image/*"):
            return "image/jpeg"
    if wanted:
        raise bad_param("accept", f"{wanted[:40]!r}: rendered media types are image/jpeg and image/png")
    raise not_acceptable("Rendered media types: image/jpeg, image/png")


def _numbers(request, name: str, count: int, *, positive: bool = True) -> list[float] | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    parts = raw.split(",")
    try:
        values = [float(p) for p in parts[:count]]
    except ValueError:
        raise bad_param(name, f"{raw[:40]!r} is not a comma-separated list of numbers") from None
    if len(values) < count or any(v != v or abs(v) > 1e9 for v in values):
        raise bad_param(name, f"needs {count} numbers")
    if positive and any(v <= 0 for v in values):
        raise bad_param(name, "values must be positive")
    return values


def render_options(request, *, frame: int = 1) -> rendering.RenderOptions:
    """Rendered-resource query parameters (PS3.18 8.3.5.1): window, viewport, quality, accept."""
    window = None
    raw_window = request.query_params.get("window")
    if raw_window:
        parts = raw_window.split(",")
        try:
            center, width = float(parts[0]), float(parts[1])
        except (ValueError, IndexError):
            raise bad_param("window", "use window=center,width[,linear|linear-exact|sigmoid]") from None
        function = (parts[2] if len(parts) > 2 else "linear").strip().upper().replace("-", "_")
        if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID") or width <= 0 or abs(center) > 1e9:
            raise bad_param("window", "width must be positive and the function linear, linear-exact or sigmoid")
        window = rendering.Window(center, width, function)
    viewport = _numbers(request, "viewport", 2)
    if viewport and any(v > 8192 for v in viewport):
        raise bad_param("viewport", "at most 8192 pixels")
    quality = int_param(request, "quality", default=90, minimum=1, maximum=100)
    return rendering.RenderOptions(
        frame=frame,
        window=window,
        viewport=(int(viewport[0]), int(viewport[1])) if viewport else None,
        quality=quality,
        media_type=_render_media_type(request),
    )


class RenderedView(DicomWebView):
    """Rendered resources (PS3.18 10.4.1.1.3): instance/frame as one image, series/study as multipart."""

    @schema.rendered
    def get(self, request, **kwargs):
        frames = _frame_numbers(kwargs["frames"]) if "frames" in kwargs else None
        options = render_options(request, frame=frames[0] if frames else 1)
        instances = _stored(kwargs)
        if "instance" in kwargs and (frames is None or len(frames) == 1):
            item = instances[0]
            data = rendering.frame_render(path=storage.absolute_path(item.file_path), options=options)
            return HttpResponse(data, content_type=options.media_type)
        boundary = boundary_new()

        def parts() -> Iterator[OutPart]:
            for item in instances:
                if not item.rows:
                    continue
                for number in frames or [1]:
                    single = rendering.RenderOptions(**{**options.__dict__, "frame": number})
                    data = rendering.frame_render(path=storage.absolute_path(item.file_path), options=single)
                    yield OutPart(options.media_type, data=data,
                                  location=instance_url(request, item.study_instance_uid,
                                                        item.series_instance_uid, item.sop_instance_uid))

        return StreamingHttpResponse(
            multipart_stream(parts(), boundary), content_type=multipart_content_type(options.media_type, boundary)
        )


class ThumbnailView(DicomWebView):
    """Thumbnails (PS3.18 10.4.1.1.6 / 8.3.5.1.5): one JPEG of the study, series or instance."""

    @schema.thumbnail
    def get(self, request, **kwargs):
        size = int_param(request, "size", default=rendering.THUMBNAIL_SIZE, minimum=8, maximum=1024)
        viewport = _numbers(request, "viewport", 2)
        if viewport and any(v > 1024 for v in viewport):
            raise bad_param("viewport", "at most 1024 pixels for a thumbnail")
        media_type = _render_media_type(request)
        if "instance" in kwargs:
            item = _stored(kwargs)[0]
        else:
            item = selectors.stored_instance_middle(
                study_instance_uid=kwargs["study"], series_instance_uid=kwargs.get("series")
            )
        data = rendering.thumbnail_render(
            path=storage.absolute_path(item.file_path), size=size,
            viewport=(int(viewport[0]), int(viewport[1])) if viewport else None, media_type=media_type,
        )
        response = HttpResponse(data, content_type=media_type)
        response["Cache-Control"] = "private, max-age=3600"
        return response
