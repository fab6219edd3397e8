"""Root URL configuration: each app mounts its own urls module."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    # DICOMweb under /dicomweb/ and WADO-URI at /wado (PS3.18).
    path("", include("dicomweb.urls")),
    # REST API under /api/: archive, DIMSE control/nodes/jobs, worklist, print jobs.
    path("api/", include("pacs.api.urls")),
    path("api/", include("dimse.api.urls")),
    path("api/", include("worklist.api.urls")),
    path("api/", include("printing.api.urls")),
    # OpenAPI UIs (schema at /api/schema/), served offline from drf-spectacular-sidecar.
    path("swagger/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    # Web pages last: they own the root.
    path("", include("pacs.web_urls")),
]
