"""STOW-RS (PS3.18 10.5): store instances sent as multipart/related application/dicom.

Parts are read from the request stream one at a time (spooled to disk when
large) and each goes through ``instance_ingest`` - the same write path as
C-STORE.  Response (PS3.18 10.5.3): ``200`` every instance stored, ``202`` some
failed, ``409`` none stored, ``415`` a body that is not
multipart/related; type="application/dicom", ``400`` a malformed body.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

from pydicom import dcmread
from rest_framework import status
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.response import Response

from dicomweb.api import schema
from dicomweb.api.base import DicomWebView, instance_url, study_url
from dicomweb.dicomjson import element_json
from dicomweb.parsers import MultipartRelatedParser, Part
from pacs.exceptions import PacsError
from pacs.services.ingest import IngestOrigin, instance_ingest

logger = logging.getLogger("dicomweb")

# PS3.18 Table 10.5.3-1 / PS3.4 Annex B failure reasons.
PROCESSING_FAILURE = 0x0110
CLASS_INSTANCE_CONFLICT = 0x0119  # SOP Class/Instance conflict: the part is not in the target study
CANNOT_UNDERSTAND = 0xC000

_HEADER_TAGS = [0x00080016, 0x00080018, 0x0020000D]


def _identity(part: Part) -> tuple[str, str, str]:
    """(SOPClassUID, SOPInstanceUID, StudyInstanceUID) of a part, '' for what cannot be read."""
    try:
        source = part.head if part.error is not None else part.source()
        fh = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
        with fh:
            ds = dcmread(fh, stop_before_pixels=True, specific_tags=_HEADER_TAGS, force=True)
        return (str(ds.get("SOPClassUID", "") or ""), str(ds.get("SOPInstanceUID", "") or ""),
                str(ds.get("StudyInstanceUID", "") or ""))
    except Exception:
        return "", "", ""


def _failed(sop_class: str, sop_instance: str, reason: int) -> dict:
    item = {
        "00081150": element_json(0x00081150, "UI", [sop_class] if sop_class else None),
        "00081155": element_json(0x00081155, "UI", [sop_instance] if sop_instance else None),
        "00081197": element_json(0x00081197, "US", [reason]),
    }
    return item


class StudyStoreView(DicomWebView):
    """Store Instances (PS3.18 10.5) at ``/studies`` and ``/studies/{study}``."""

    parser_classes = [MultipartRelatedParser]

    @schema.stow
    def post(self, request, **kwargs):
        target_study = kwargs.get("study")
        try:
            body = request.data
        except UnsupportedMediaType:
            raise
        if not isinstance(body, dict) or "parts" not in body:
            raise UnsupportedMediaType(request.content_type)
        if body["type"] not in ("application/dicom", ""):
            raise UnsupportedMediaType(
                request.content_type,
                detail=f'Only multipart/related; type="application/dicom" is accepted, not type="{body["type"]}"',
            )
        origin = IngestOrigin(source="stow-rs", peer_address=request.META.get("REMOTE_ADDR", "")[:64])
        referenced, failed, studies = [], [], set()
        parts_seen = 0
        try:
            for part in body["parts"]:
                parts_seen += 1
                try:
                    self._store_one(request, part, target_study, origin, referenced, failed, studies)
                finally:
                    part.discard()
        except ParseError as exc:
            if not referenced and not failed:
                raise
            logger.warning("stow-rs body truncated after parts=%d error=%s", parts_seen, exc)
            failed.append(_failed("", "", CANNOT_UNDERSTAND))
        if not referenced and not failed:
            raise ParseError("multipart/related body without any part")

        answer: dict = {}
        if len(studies) == 1:
            answer["00081190"] = element_json(0x00081190, "UR", [study_url(request, next(iter(studies)))])
        if failed:
            answer["00081198"] = {"vr": "SQ", "Value": failed}
        if referenced:
            answer["00081199"] = {"vr": "SQ", "Value": referenced}
        code = status.HTTP_200_OK if not failed else (status.HTTP_202_ACCEPTED if referenced else status.HTTP_409_CONFLICT)
        logger.info("stow-rs stored=%d failed=%d status=%d", len(referenced), len(failed), code)
        return Response(answer, status=code)

    def _store_one(self, request, part: Part, target_study, origin, referenced, failed, studies) -> None:
        sop_class, sop_instance, study = _identity(part)
        if part.error is not None:  # not kept: no room for it on the archive volume, or the spool failed
            failed.append(_failed(sop_class, sop_instance, part.error[0]))
            return
        if part.content_type not in ("application/dicom", ""):
            failed.append(_failed(sop_class, sop_instance, CANNOT_UNDERSTAND))
            return
        if target_study and study != target_study:
            failed.append(_failed(sop_class, sop_instance, CLASS_INSTANCE_CONFLICT))
            return
        source = part.source()
        try:
            result = instance_ingest(source=source if isinstance(source, bytes) else Path(source), origin=origin)
        except PacsError as exc:
            logger.info("stow-rs part failed sop_instance_uid=%s status=0x%04X reason=%s", sop_instance,
                        exc.dicom_status, exc.message)
            failed.append(_failed(sop_class, sop_instance, exc.dicom_status))
            return
        studies.add(result.study_instance_uid)
        referenced.append({
            "00081150": element_json(0x00081150, "UI", [result.sop_class_uid]),
            "00081155": element_json(0x00081155, "UI", [result.sop_instance_uid]),
            "00081190": element_json(0x00081190, "UR", [instance_url(
                request, result.study_instance_uid, result.series_instance_uid, result.sop_instance_uid)]),
        })
