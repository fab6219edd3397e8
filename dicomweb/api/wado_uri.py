"""WADO-URI (PS3.18 9 / formerly PS3.18 6.2): ``/wado?requestType=WADO&studyUID=...``.

``contentType`` ``image/jpeg`` (default for images), ``image/png`` or
``application/dicom`` (default for objects without pixels); ``transferSyntax``
and ``anonymize=yes`` apply to ``application/dicom``; ``rows``, ``columns``,
``windowCenter``, ``windowWidth``, ``frameNumber``, ``region`` and
``imageQuality`` to rendered images.  ``imageQuality`` also sets the quality of
``application/dicom`` in a lossy ``transferSyntax`` (JPEG Baseline/Extended,
JPEG-LS near-lossless, JPEG 2000), as PS3.18 allows; with any other syntax it
is a 400.

``transferSyntax`` (PS3.18 9.4.2.4): the server writes every syntax of
:data:`WADO_TRANSFER_SYNTAXES` except Big Endian and Deflated.  A value that is
no transfer syntax UID is a 400; a transfer syntax the server does not write
(HTJ2K, video, Big Endian, Deflated), or does not write for this object's
pixels (16-bit to JPEG Baseline, colour to JPEG Extended, PALETTE COLOR to a
lossy syntax), is a 406 whose message says why - never a silently rescaled
image.  A lossy
syntax gives a derived instance with a new SOP Instance UID
(:mod:`pacs.services.encoders`).
"""

from __future__ import annotations

import logging

from django.http import HttpResponse
from pydicom import dcmread
from pydicom.uid import UID

from dicomweb.api import schema
from dicomweb.api.base import DicomWebView, bad_param, int_param, uid_check
from pacs import selectors, storage
from pacs.services import encoders, rendering, transcode
from pacs.services.anonymize import dataset_anonymize

logger = logging.getLogger("dicomweb")

WADO_TRANSFER_SYNTAXES = {
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.4.50",
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.5",
}
LOSSY_TRANSFER_SYNTAXES = {str(uid) for uid in encoders.LOSSY_SYNTAXES}


def _float(request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise bad_param(name, f"{raw[:40]!r} is not a number") from None
    if value != value or abs(value) > 1e9:
        raise bad_param(name, "out of range")
    return value


def _region(request) -> tuple[float, float, float, float] | None:
    raw = request.query_params.get("region")
    if not raw:
        return None
    try:
        values = tuple(float(v) for v in raw.split(","))
    except ValueError:
        raise bad_param("region", "use region=x1,y1,x2,y2 with fractions 0.0-1.0") from None
    if len(values) != 4 or not all(0.0 <= v <= 1.0 for v in values) or values[0] >= values[2] or values[1] >= values[3]:
        raise bad_param("region", "use region=x1,y1,x2,y2 with 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1")
    return values  # type: ignore[return-value]


class WadoUriView(DicomWebView):
    """Retrieve one object by URL parameters (WADO-URI)."""

    @schema.wado_uri
    def get(self, request, **kwargs):
        params = request.query_params
        request_type = params.get("requestType")
        if request_type != "WADO":
            raise bad_param("requestType", "must be WADO")
        uids = {}
        for name in ("studyUID", "seriesUID", "objectUID"):
            value = params.get(name)
            if not value:
                raise bad_param(name, "is required")
            uids[name] = uid_check(value, name)
        content_type = (params.get("contentType") or "").split(",")[0].split(";")[0].strip().lower()
        if content_type and content_type not in ("image/jpeg", "image/png", "application/dicom", "*/*", "image/*"):
            raise bad_param("contentType", "use image/jpeg, image/png or application/dicom")
        anonymize = (params.get("anonymize") or "").lower()
        if anonymize not in ("", "yes", "no"):
            raise bad_param("anonymize", "must be yes")
        transfer_syntax = params.get("transferSyntax") or ""
        if transfer_syntax and not UID(transfer_syntax).is_transfer_syntax:
            raise bad_param("transferSyntax", f"{transfer_syntax[:64]!r} is not a transfer syntax UID")
        instance = selectors.instance_get(
            sop_instance_uid=uids["objectUID"], study_instance_uid=uids["studyUID"],
            series_instance_uid=uids["seriesUID"],
        )
        path = storage.absolute_path(instance.file_path)
        if not content_type or content_type in ("*/*", "image/*"):
            content_type = "image/jpeg" if instance.rows else "application/dicom"
        if content_type == "application/dicom":
            quality = None
            if params.get("imageQuality"):
                if transfer_syntax not in LOSSY_TRANSFER_SYNTAXES:
                    raise bad_param("imageQuality", "applies to images and to application/dicom in a lossy transferSyntax")
                quality = int_param(request, "imageQuality", minimum=1, maximum=100)
            return self._dicom(path, instance, transfer_syntax, anonymize == "yes", quality)
        if anonymize == "yes":
            raise bad_param("anonymize", "applies to contentType=application/dicom only")
        frame = int_param(request, "frameNumber", default=1, minimum=1, maximum=1_000_000)
        rows = int_param(request, "rows", default=None, minimum=1, maximum=8192)
        columns = int_param(request, "columns", default=None, minimum=1, maximum=8192)
        quality = int_param(request, "imageQuality", default=90, minimum=1, maximum=100)
        center, width = _float(request, "windowCenter"), _float(request, "windowWidth")
        if (center is None) != (width is None):
            raise bad_param("windowWidth" if width is None else "windowCenter", "windowCenter and windowWidth go together")
        if width is not None and width <= 0:
            raise bad_param("windowWidth", "must be positive")
        viewport = None
        if rows or columns:
            viewport = (columns or 8192, rows or 8192)
        options = rendering.RenderOptions(
            frame=frame,
            window=rendering.Window(center, width) if center is not None else None,
            viewport=viewport,
            region=_region(request),
            quality=quality,
            media_type=content_type,
        )
        return HttpResponse(rendering.frame_render(path=path, options=options), content_type=content_type)

    def _dicom(self, path, instance, transfer_syntax: str, anonymize: bool, quality: int | None) -> HttpResponse:
        # PS3.18 9.1.2.1.9: Explicit VR Little Endian unless asked otherwise (as stored
        # when the stored syntax cannot be decoded and nothing was asked for).
        target = transfer_syntax or "1.2.840.10008.1.2.1"
        if not transfer_syntax and not transcode.can_transcode(instance.transfer_syntax_uid, target):
            target = instance.transfer_syntax_uid
        if anonymize:
            ds = dcmread(path)
            dataset_anonymize(ds)
            data = transcode.dataset_encode(transcode.instance_transcode(ds, target, quality=quality))
        elif target == instance.transfer_syntax_uid:
            data = path.read_bytes()
        else:
            data = transcode.dataset_encode(transcode.instance_transcode(path, target, quality=quality))
        response = HttpResponse(data, content_type="application/dicom")
        response["Content-Disposition"] = f'attachment; filename="{instance.sop_instance_uid}.dcm"'
        return response


__all__ = ["WadoUriView"]
