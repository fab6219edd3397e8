"""WADO-RS Retrieve Metadata (PS3.18 10.4.1.1.2): DICOM JSON (Annex F.2) or Native DICOM Model XML (F.3)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.http import HttpResponse, StreamingHttpResponse
from rest_framework.response import Response

from dicomweb import dicomxml
from dicomweb.api import schema
from dicomweb.api.base import DicomWebView, base_url, not_acceptable
from dicomweb.api.retrieve import _accepted, _lazy, _stored
from dicomweb.dicomjson import dataset_json, pixel_element_locate
from dicomweb.dicomxml import dataset_xml
from dicomweb.renderers import (
    OutPart,
    boundary_new,
    multipart_content_type,
    multipart_stream,
)
from pacs import storage
from pacs.selectors import NotFound, StoredInstance

logger = logging.getLogger("dicomweb")


def _metadata_format(request, count: int) -> str:
    """``json``, ``xml`` (one document) or ``xml-multipart`` from the Accept header (PS3.18 10.4.1.1.2)."""
    header = request.META.get("HTTP_ACCEPT", "")
    for item in _accepted(request):
        if item.quality <= 0:
            continue
        if item.media_type in ("application/dicom+json", "application/json", "*/*", "application/*"):
            return "json"
        if item.media_type == "multipart/related" and item.part_type in (dicomxml.MEDIA_TYPE, ""):
            return "xml-multipart" if item.part_type else "json"
        if item.media_type == dicomxml.MEDIA_TYPE and count == 1:
            return "xml"
    if not header:
        return "json"
    raise not_acceptable(
        'Acceptable: application/dicom+json, multipart/related; type="application/dicom+xml", '
        "or application/dicom+xml for one instance"
    )


class MetadataView(DicomWebView):
    """Retrieve metadata (PS3.18 10.4.1.1.2): DICOM JSON or the Native DICOM Model XML.

    Bulk values (Pixel Data always) are BulkDataURIs, or InlineBinary with
    ``inlinebinary=true``.  XML is one ``application/dicom+xml`` part per
    instance in ``multipart/related`` (a single instance may also be asked for
    as plain ``application/dicom+xml``).
    """

    @schema.metadata
    def get(self, request, **kwargs):
        instances = _stored(kwargs)
        output = _metadata_format(request, len(instances))
        inline = request.query_params.get("inlinebinary", "").lower() in ("1", "true", "yes")
        root = base_url(request)

        def documents() -> Iterator[tuple[StoredInstance, object, str | None, dict | None]]:
            for item in instances:
                path = storage.absolute_path(item.file_path)
                try:
                    ds, pixel = pixel_element_locate(path)
                except OSError:
                    logger.error("metadata file missing sop_instance_uid=%s", item.sop_instance_uid)
                    continue
                bulk = None if inline else (
                    f"{root}/dicomweb/studies/{item.study_instance_uid}/series/{item.series_instance_uid}"
                    f"/instances/{item.sop_instance_uid}/bulkdata"
                )
                if inline and pixel is not None:
                    pixel = None  # InlineBinary of pixels is not offered; frames serve them.
                yield item, ds, bulk, pixel

        if output == "json":
            return Response([dataset_json(ds, bulk_uri=bulk, pixel=pixel) for _, ds, bulk, pixel in documents()])
        if output == "xml":
            found = next(documents(), None)
            if found is None:
                raise NotFound(f"Instance {instances[0].sop_instance_uid}: stored file missing")
            _, ds, bulk, pixel = found
            return HttpResponse(dataset_xml(ds, bulk_uri=bulk, pixel=pixel), content_type=dicomxml.MEDIA_TYPE)
        boundary = boundary_new()
        parts = (OutPart(dicomxml.MEDIA_TYPE, data=_lazy(dataset_xml, ds=ds, bulk_uri=bulk, pixel=pixel))
                 for _, ds, bulk, pixel in documents())
        return StreamingHttpResponse(multipart_stream(parts, boundary),
                                     content_type=multipart_content_type(dicomxml.MEDIA_TYPE, boundary))


__all__ = ["MetadataView"]
