"""URL routes of the print job API (mounted under /api/)."""

from rest_framework.routers import SimpleRouter

from printing.api import views

router = SimpleRouter(trailing_slash="/?")
router.register("print-jobs", views.PrintJobViewSet, basename="print-job")

urlpatterns = [*router.urls]
