"""URL routes of the DIMSE control API, nodes, jobs and associations (mounted under /api/)."""

from django.urls import path
from rest_framework.routers import SimpleRouter

from dimse.api import views

router = SimpleRouter(trailing_slash="/?")
router.register("nodes", views.RemoteNodeViewSet, basename="node")
router.register("jobs", views.JobViewSet, basename="job")
router.register("associations", views.AssociationViewSet, basename="association")

urlpatterns = [
    path("dicom/status", views.DicomStatusView.as_view(), name="dicom-status"),
    path("dicom/start", views.DicomStartView.as_view(), name="dicom-start"),
    path("dicom/stop", views.DicomStopView.as_view(), name="dicom-stop"),
    path("dicom/restart", views.DicomRestartView.as_view(), name="dicom-restart"),
    path("dicom/settings", views.DicomSettingsView.as_view(), name="dicom-settings"),
    *router.urls,
]
