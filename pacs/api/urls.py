"""URL routes of the archive REST API (mounted under /api/) and the OpenAPI schema."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from pacs.api import views

router = SimpleRouter(trailing_slash="/?")
router.register("patients", views.PatientViewSet, basename="patient")
router.register("studies", views.StudyViewSet, basename="study")
router.register("series", views.SeriesViewSet, basename="series")
router.register("instances", views.InstanceViewSet, basename="instance")
router.register("users", views.UserViewSet, basename="user")
router.register("logs", views.LogViewSet, basename="log")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("settings/", views.ArchiveSettingsView.as_view(), name="archive-settings"),
    *router.urls,
]
