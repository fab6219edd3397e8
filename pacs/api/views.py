"""Archive REST API under /api/: patients, studies, series, instances, settings, users, logs.

Lists match query keys with :mod:`pacs.matching` (the C-FIND/QIDO rules);
edits, deletes and downloads call :mod:`pacs.services.studies`.  Writes need
the Django model permission (``pacs.change_study``, ``pacs.delete_study``...),
given to users through groups; ``users`` is for administrators only.
"""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from pacs import selectors
from pacs.api import serializers as s
from pacs.api.filters import MatchingFilterBackend
from pacs.exceptions import PacsError
from pacs.matching import IMAGE, PATIENT, SERIES, STUDY
from pacs.services import logs as log_service
from pacs.services import studies as study_service
from pacs.services.config import archive_config_get, archive_config_update

logger = logging.getLogger("pacs.api")


class ModelPermissions(permissions.DjangoModelPermissions):
    """Reads: any logged-in user; writes: the model permission from the user's groups."""

    perms_map = {**permissions.DjangoModelPermissions.perms_map, "GET": [], "HEAD": [], "OPTIONS": []}


def _pacs_error(exc: PacsError) -> Response:
    return Response({"detail": exc.message}, status=exc.http_status)


def _download(rows: list[dict], name: str, dicomdir: bool) -> StreamingHttpResponse:
    if not rows:
        raise NotFound("Nothing to download")
    response = StreamingHttpResponse(study_service.archive_stream(instance_rows=rows, dicomdir=dicomdir),
                                     content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{name}.zip"'
    return response


DICOMDIR_PARAM = OpenApiParameter("dicomdir", OpenApiTypes.BOOL, description="Lay out as a DICOMDIR file-set")
ZIP_RESPONSE = {(200, "application/zip"): OpenApiTypes.BINARY}


def _flag(request, name: str) -> bool:
    raw = request.query_params.get(name, "false").lower()
    if raw not in ("true", "false", "1", "0", "yes", "no", ""):
        raise ValidationError({name: ["must be true or false"]})
    return raw in ("true", "1", "yes")


class _ArchiveViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    permission_classes = [ModelPermissions]
    filter_backends = [MatchingFilterBackend]
    http_method_names = ["get", "patch", "delete", "head", "options"]

    def handle_exception(self, exc):
        if isinstance(exc, PacsError):
            return _pacs_error(exc)
        return super().handle_exception(exc)


@extend_schema(tags=["archive"])
class PatientViewSet(_ArchiveViewSet, mixins.DestroyModelMixin):
    """Patients. Filter with DICOM keywords (``PatientName=WANG*``)."""

    queryset = selectors.patient_queryset()
    serializer_class = s.PatientSerializer
    matching_level = PATIENT
    ordering_fields = ["patient_name", "patient_id", "patient_birth_date", "created_at"]

    @extend_schema(request=s.DemographicsSerializer, responses=s.PatientSerializer,
                   examples=[OpenApiExample("Rename", value={"PatientName": "DOE^JANE"})])
    def partial_update(self, request, *args, **kwargs):
        """Edit patient attributes in every study of the patient (stored files and index)."""
        patient = self.get_object()
        data = s.DemographicsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        updated = study_service.patient_demographics_update(patient_id=patient.pk, changes=data.validated_data)
        return Response(s.PatientSerializer(updated).data)

    @extend_schema(responses=s.DeleteResultSerializer)
    def destroy(self, request, *args, **kwargs):
        """Delete the patient with every study, series, instance and file."""
        result = study_service.patient_delete(patient_id=self.get_object().pk)
        return Response(result)


@extend_schema(tags=["archive"])
class StudyViewSet(_ArchiveViewSet, mixins.DestroyModelMixin):
    """Studies. Filter with DICOM keywords (``StudyDate=20240101-``, ``ModalitiesInStudy=CT``)."""

    queryset = selectors.study_queryset()
    serializer_class = s.StudySerializer
    matching_level = STUDY
    ordering_fields = ["study_date", "study_time", "accession_number", "study_description", "created_at",
                       "patient__patient_name", "patient__patient_id"]

    @extend_schema(request=s.DemographicsSerializer, responses=s.StudySerializer,
                   examples=[OpenApiExample("Fix accession", value={"AccessionNumber": "A123"})])
    def partial_update(self, request, *args, **kwargs):
        """Edit patient/study attributes of the study (stored files and index)."""
        study = self.get_object()
        data = s.DemographicsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        updated = study_service.study_demographics_update(study_id=study.pk, changes=data.validated_data)
        return Response(s.StudySerializer(updated).data)

    @extend_schema(responses=s.DeleteResultSerializer)
    def destroy(self, request, *args, **kwargs):
        """Delete the study: files and rows, counts kept right."""
        return Response(study_service.study_delete(study_id=self.get_object().pk))

    @extend_schema(parameters=[DICOMDIR_PARAM], responses=ZIP_RESPONSE)
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        """Download the study as a ZIP (optionally a DICOMDIR file-set)."""
        study = self.get_object()
        return _download(selectors.download_rows(study_id=study.pk), study.study_instance_uid,
                         _flag(request, "dicomdir"))


@extend_schema(tags=["archive"])
class SeriesViewSet(_ArchiveViewSet, mixins.DestroyModelMixin):
    """Series. Filter with DICOM keywords (``Modality=CT``, ``StudyInstanceUID=...``)."""

    queryset = selectors.series_queryset()
    serializer_class = s.SeriesSerializer
    matching_level = SERIES
    ordering_fields = ["series_number", "modality", "series_date", "created_at"]
    http_method_names = ["get", "delete", "head", "options"]

    @extend_schema(responses=s.DeleteResultSerializer)
    def destroy(self, request, *args, **kwargs):
        return Response(study_service.series_delete(series_id=self.get_object().pk))

    @extend_schema(parameters=[DICOMDIR_PARAM], responses=ZIP_RESPONSE)
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        """Download the series as a ZIP (optionally a DICOMDIR file-set)."""
        series = self.get_object()
        return _download(selectors.download_rows(series_id=series.pk), series.series_instance_uid,
                         _flag(request, "dicomdir"))


@extend_schema(tags=["archive"])
class InstanceViewSet(_ArchiveViewSet, mixins.DestroyModelMixin):
    """Instances. Filter with DICOM keywords (``SOPInstanceUID=...``, ``InstanceNumber=3``)."""

    queryset = selectors.instance_queryset()
    serializer_class = s.InstanceSerializer
    matching_level = IMAGE
    ordering_fields = ["instance_number", "received_at"]
    http_method_names = ["get", "delete", "head", "options"]

    @extend_schema(responses=s.DeleteResultSerializer)
    def destroy(self, request, *args, **kwargs):
        return Response(study_service.instances_delete(instance_ids=[self.get_object().pk]))


@extend_schema(tags=["settings"])
class ArchiveSettingsView(APIView):
    """Archive policies (duplicate policy, compression, free-space floor, path template) and the web
    settings the Settings page edits (CORS origins, external viewer URL, public URL)."""

    permission_classes = [permissions.IsAuthenticated]

    def check_permissions(self, request):
        super().check_permissions(request)
        if request.method not in permissions.SAFE_METHODS and not request.user.has_perm("pacs.change_archiveconfig"):
            self.permission_denied(request, message="Needs the pacs.change_archiveconfig permission.")

    @extend_schema(responses=s.ArchiveConfigSerializer)
    def get(self, request):
        return Response(s.ArchiveConfigSerializer(archive_config_get(fresh=True)).data)

    @extend_schema(request=s.ArchiveConfigSerializer, responses=s.ArchiveConfigSerializer,
                   examples=[OpenApiExample("Reject duplicates", value={"duplicate_policy": "reject"})])
    def put(self, request):
        data = s.ArchiveConfigSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        try:
            config = archive_config_update(**data.validated_data)
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict if hasattr(exc, "message_dict") else exc.messages) from None
        logger.info("archive settings updated user=%s keys=%s", request.user.username, ",".join(data.validated_data))
        return Response(s.ArchiveConfigSerializer(config).data)

    patch = put


@extend_schema(tags=["users"])
class UserViewSet(viewsets.ModelViewSet):
    """Users and their groups (administrators only)."""

    queryset = get_user_model().objects.order_by("username").prefetch_related("groups")
    serializer_class = s.UserSerializer
    permission_classes = [permissions.IsAdminUser]


# --- Logs --------------------------------------------------------------------------

LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def _service(service: str) -> str:
    if service not in settings.PACS_LOG_SERVICES:
        raise NotFound(f"Unknown log service {service!r}; known: {', '.join(settings.PACS_LOG_SERVICES)}")
    return service


def _log_file(service: str, name: str | None) -> Path:
    base = Path(settings.PACS_LOG_DIR) / f"{service}.log"
    if not name:
        return base
    if name != base.name and not (name.startswith(base.name + ".") and name[len(base.name) + 1:].isdigit()):
        raise ValidationError({"file": [f"not a log file of {service}"]})
    return base.with_name(name)


def _files(service: str) -> list[dict]:
    base = Path(settings.PACS_LOG_DIR) / f"{service}.log"
    out = []
    for path in sorted(base.parent.glob(base.name + "*")):
        suffix = path.name[len(base.name):]
        if suffix and not (suffix.startswith(".") and suffix[1:].isdigit()):
            continue
        stat = path.stat()
        out.append({"service": service, "name": path.name, "size": stat.st_size,
                    "modified": datetime.datetime.fromtimestamp(stat.st_mtime, tz=datetime.timezone.utc),
                    "current": path == base})
    return out


@extend_schema(tags=["logs"])
class LogViewSet(viewsets.ViewSet):
    """Per-service logs: list files, tail with level filter and search, download, delete rotated files."""

    permission_classes = [permissions.IsAdminUser]
    lookup_field = "service"

    @extend_schema(responses=s.LogFileSerializer(many=True))
    def list(self, request):
        files = [item for service in settings.PACS_LOG_SERVICES for item in _files(service)]
        return Response(s.LogFileSerializer(files, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("lines", int, description="How many lines (default 200, max 10000)"),
            OpenApiParameter("level", str, enum=LEVELS, description="Minimum level"),
            OpenApiParameter("q", str, description="Text to search (case-insensitive)"),
            OpenApiParameter("file", str, description="A rotated file name (storage.log.1); default current"),
        ],
        responses=s.LogTailSerializer,
    )
    def retrieve(self, request, service=None):
        """Tail of one service's log."""
        service = _service(service)
        raw_lines = request.query_params.get("lines", "200")
        if not raw_lines.isdigit() or not 1 <= int(raw_lines) <= 10000:
            raise ValidationError({"lines": ["an integer between 1 and 10000"]})
        level = request.query_params.get("level", "").upper()
        if level and level not in LEVELS:
            raise ValidationError({"level": [f"one of {', '.join(LEVELS)}"]})
        path = _log_file(service, request.query_params.get("file"))
        lines = []
        if path.exists():
            lines = selectors.log_tail(path=path, lines=int(raw_lines), level=level,
                                       search=request.query_params.get("q", "")[:200])
        return Response({"service": service, "file": path.name, "lines": lines})

    @extend_schema(parameters=[OpenApiParameter("file", str)], responses={(200, "text/plain"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def download(self, request, service=None):
        """Download a log file (current or rotated)."""
        path = _log_file(_service(service), request.query_params.get("file"))
        if not path.exists():
            raise NotFound(f"{path.name} does not exist")
        return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name, content_type="text/plain")

    @extend_schema(parameters=[OpenApiParameter("file", str, required=True)], responses={204: None})
    @action(detail=True, methods=["delete"], url_path="files")
    def delete_file(self, request, service=None):
        """Delete a rotated log file (the current file is never deleted)."""
        service = _service(service)
        name = request.query_params.get("file", "")
        path = _log_file(service, name or None)
        if not name or path.name == f"{service}.log":
            raise ValidationError({"file": ["name a rotated file such as storage.log.1; the current log stays"]})
        if not log_service.log_rotated_delete(path=path):
            raise NotFound(f"{path.name} does not exist")
        logger.info("log file deleted user=%s file=%s", request.user.username, path.name)
        return Response(status=status.HTTP_204_NO_CONTENT)
