"""Print job API (``/api/print-jobs/``): list with filters, detail, film preview PNG and DICOM, delete, re-print."""

from __future__ import annotations

from django.http import FileResponse
from django_filters import rest_framework as django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response

from dimse.api.serializers import JobSerializer
from pacs.api.views import ModelPermissions
from pacs.storage import absolute_path as archive_path
from printing import selectors
from printing.api import serializers as s
from printing.choices import PrintJobStatus
from printing.exceptions import ForwardError
from printing.models import PrintJob
from printing.services import files
from printing.services.print_jobs import print_job_delete, print_job_forward

FILM_PARAM = OpenApiParameter("film", OpenApiTypes.INT, description="Film number (default 1)")


class PrintJobFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=PrintJobStatus.choices)
    calling_aet = django_filters.CharFilter()
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lte")

    class Meta:
        model = PrintJob
        fields = ["status", "calling_aet"]


def _film_number(request) -> int:
    raw = request.query_params.get("film", "1")
    if not raw.isdigit() or len(raw) > 6 or int(raw) < 1:
        raise ValidationError({"film": ["a film number (1, 2, ...)"]})
    return int(raw)


@extend_schema(tags=["print"])
class PrintJobViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Print jobs received by the print listener: films, previews, the archived DICOM film, re-print."""

    permission_classes = [ModelPermissions]
    filterset_class = PrintJobFilter
    lookup_value_regex = r"[0-9]{1,18}"

    def get_queryset(self):
        return selectors.print_job_list()

    def get_serializer_class(self):
        return s.PrintJobDetailSerializer if self.action == "retrieve" else s.PrintJobSerializer

    def perform_destroy(self, instance: PrintJob) -> None:
        print_job_delete(job_id=instance.pk)

    def _film(self, request):
        job = self.get_object()
        film = selectors.film_get(print_job_id=job.pk, film_number=_film_number(request))
        if film is None:
            raise NotFound(f"Print job {job.pk} has no such film")
        return film

    @extend_schema(parameters=[FILM_PARAM], responses={(200, "image/png"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], url_path="preview", url_name="preview")
    def preview(self, request, pk=None):
        """The composed film as a PNG."""
        film = self._film(request)
        try:
            handle = open(files.absolute_path(film.preview_file), "rb")  # noqa: SIM115 - FileResponse closes it
        except OSError as exc:
            raise NotFound("The film preview is missing") from exc
        return FileResponse(
            handle, content_type="image/png", filename=f"print-{film.print_job_id}-film-{film.film_number}.png"
        )

    @extend_schema(parameters=[FILM_PARAM], responses={(200, "application/dicom"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], url_path="dicom", url_name="dicom")
    def dicom(self, request, pk=None):
        """The composed film as archived (Secondary Capture, Part 10)."""
        film = self._film(request)
        if film.instance is None:
            raise NotFound("The film's instance was deleted from the archive")
        try:
            handle = open(archive_path(film.instance.file_path), "rb")  # noqa: SIM115
        except OSError as exc:
            raise NotFound("The film's file is missing from the archive") from exc
        return FileResponse(
            handle, content_type="application/dicom", as_attachment=True, filename=f"{film.sop_instance_uid}.dcm"
        )

    @extend_schema(request=s.ReprintSerializer, responses={201: JobSerializer})
    @action(detail=True, methods=["post"])
    def reprint(self, request, pk=None):
        """Queue a print-forward job sending the films, original layout, to a printer node."""
        if not request.user.has_perm("printing.change_printjob"):
            raise PermissionDenied("Needs the printing.change_printjob permission.")
        job = self.get_object()
        data = s.ReprintSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        numbers = data.validated_data["films"]
        film_ids = None
        if numbers:
            film_ids = list(job.films.filter(film_number__in=numbers).values_list("pk", flat=True))
            if len(film_ids) != len(set(numbers)):
                raise ValidationError({"films": ["no such film number in this print job"]})
        try:
            forward = print_job_forward(
                print_job_id=job.pk, node_id=data.validated_data["node"], film_ids=film_ids, user=request.user
            )
        except ForwardError as exc:
            raise ValidationError({"node": [exc.message]}) from exc
        return Response(JobSerializer(forward).data, status=status.HTTP_201_CREATED)
