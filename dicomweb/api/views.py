"""DICOMweb and WADO-URI views, one per PS3.18 resource and transaction.

The implementations live by transaction: :mod:`.query` (QIDO-RS),
:mod:`.retrieve` and :mod:`.metadata` (WADO-RS), :mod:`.store` (STOW-RS), :mod:`.wado_uri`.
``/studies`` and ``/studies/{study}`` serve two transactions each (search or
retrieve on GET, store on POST): :func:`studies_resource` dispatches by method.
"""

from __future__ import annotations

from django.views.decorators.csrf import csrf_exempt

from dicomweb.api.metadata import MetadataView
from dicomweb.api.query import InstanceQueryView, SeriesQueryView, StudyQueryView
from dicomweb.api.retrieve import (
    BulkDataView,
    FrameRetrieveView,
    InstanceRetrieveView,
    RenderedView,
    ThumbnailView,
)
from dicomweb.api.store import StudyStoreView
from dicomweb.api.wado_uri import WadoUriView



class StudiesView(StudyStoreView, StudyQueryView):
    """``/studies``: GET searches (QIDO-RS), POST stores (STOW-RS)."""


class StudyView(StudyStoreView, InstanceRetrieveView):
    """``/studies/{study}``: GET retrieves the study (WADO-RS), POST stores into it (STOW-RS)."""


studies_resource = StudiesView.as_view()
study_resource = StudyView.as_view()


__all__ = [
    "BulkDataView", "FrameRetrieveView", "InstanceQueryView", "InstanceRetrieveView", "MetadataView",
    "RenderedView", "SeriesQueryView", "StudyQueryView", "StudyStoreView", "ThumbnailView", "WadoUriView",
    "studies_resource", "study_resource", "StudiesView", "StudyView",
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
