"""DICOMweb and WADO-URI views, one per PS3.18 resource and transaction.

The implementations live by transaction: :mod:`.query` (QIDO-RS),
:mod:`.retrieve` (WADO-RS), :mod:`.store` (STOW-RS), :mod:`.wado_uri`.
``/studies`` and ``/studies/{study}`` serve two transactions each (search or
retrieve on GET, store on POST): :func:`studies_resource` dispatches by method.
"""

from __future__ import annotations

from django.views.decorators.csrf import csrf_exempt

from dicomweb.api.query import InstanceQueryView, SeriesQueryView, StudyQueryView
from dicomweb.api.retrieve import (
    BulkDataView,
    FrameRetrieveView,
    InstanceRetrieveView,
    MetadataView,
    RenderedView,
    ThumbnailView,
)
from dicomweb.api.store import StudyStoreView
from dicomweb.api.wado_uri import WadoUriView

_study_query = StudyQueryView.as_view()
_study_store = StudyStoreView.as_view()
_study_retrieve = InstanceRetrieveView.as_view()


@csrf_exempt
def studies_resource(request, **kwargs):
    """GET /studies: QIDO-RS; POST /studies: STOW-RS."""
    if request.method == "POST":
        return _study_store(request, **kwargs)
    return _study_query(request, **kwargs)


@csrf_exempt
def study_resource(request, **kwargs):
    """GET /studies/{study}: WADO-RS retrieve; POST /studies/{study}: STOW-RS into that study."""
    if request.method == "POST":
        return _study_store(request, **kwargs)
    return _study_retrieve(request, **kwargs)


__all__ = [
    "BulkDataView", "FrameRetrieveView", "InstanceQueryView", "InstanceRetrieveView", "MetadataView",
    "RenderedView", "SeriesQueryView", "StudyQueryView", "StudyStoreView", "ThumbnailView", "WadoUriView",
    "studies_resource", "study_resource",
]


@csrf_exempt
def malformed_path(request, rest: str = ""):
    """Any other path under /dicomweb/.

    Every well-formed study-rooted path matches a route, so what reaches here
    under ``studies/`` has a bad UID segment (``/`` or ``..`` smuggled in,
    percent- or double-encoded, NUL, over 64 characters): 400.  Else 404.
    """
    from django.http import JsonResponse

    if rest.startswith("studies/") or any(token in request.path for token in ("..", "\x00", "%")):
        return JsonResponse({"detail": "Malformed DICOMweb path: a UID segment is invalid"}, status=400)
    return JsonResponse({"detail": f"No DICOMweb resource at /dicomweb/{rest[:200]}"}, status=404)
