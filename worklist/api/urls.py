"""URL routes of worklist/api: ``/api/worklist/`` items and ``/api/worklist/mpps/`` records."""

from rest_framework.routers import SimpleRouter

from worklist.api.views import PerformedProcedureStepViewSet, WorklistItemViewSet

router = SimpleRouter()
# MPPS first: "mpps" must not be taken for an item id (item ids are digits anyway).
router.register("worklist/mpps", PerformedProcedureStepViewSet, basename="worklist-mpps")
router.register("worklist", WorklistItemViewSet, basename="worklist-item")

urlpatterns = router.urls
