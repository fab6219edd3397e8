"""DIMSE control API (``/api/dicom/status|start|stop|restart|settings``), nodes, jobs, associations.

Start/stop/restart go through the control channel every ``runscp`` process
polls (``ListenerCommand``): the API issues a command and waits for a process
to apply it.  Settings combine the listener rows, the calling-AE allow list
and the archive policies; ``apply`` restarts the listeners so they take effect.
"""

from __future__ import annotations

import logging
import shutil

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Count, Sum
from django_filters import rest_framework as django_filters
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from dimse import selectors, services
from dimse.api import serializers as s
from dimse.models import AllowedCaller, AssociationLog, AssociationStatus, RemoteNode
from pacs.api.views import ModelPermissions
from pacs.choices import JobState
from pacs.models import Job, Study
from pacs.services import jobs as job_service
from pacs.services.config import archive_config_get, archive_config_update

logger = logging.getLogger("pacs.api")


class ControlPermission(permissions.BasePermission):
    """Reading status needs a login; changing listeners needs ``dimse.change_listener``."""

    message = "Needs the dimse.change_listener permission."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return request.method in permissions.SAFE_METHODS or user.has_perm("dimse.change_listener")


def _validation(exc: DjangoValidationError) -> ValidationError:
    return ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages})


def dicom_status() -> dict:
    """Listener state from every live runscp, received counts and storage use."""
    processes = selectors.scp_process_list()
    configs = {row.service: row for row in services.listener_config_list()}
    received = dict(
        AssociationLog.objects.values_list("service").annotate(n=Sum("instances_received")).values_list("service", "n")
    )
    active = dict(
        AssociationLog.objects.filter(status=AssociationStatus.ESTABLISHED)
        .values_list("service").annotate(n=Count("id")).values_list("service", "n")
    )
    listeners = []
    for service, config in configs.items():
        states = [p.listeners.get(service, {}) for p in processes]
        running = [state for state in states if state.get("running")]
        listeners.append({
            "service": service,
            "ae_title": config.ae_title,
            "port": running[0].get("port") if running else config.port,
            "configured_port": config.port,
            "enabled": config.enabled,
            "up": bool(running),
            "processes_running": len(running),
            "active_associations": sum(int(state.get("active_associations") or 0) for state in states),
            "open_association_records": active.get(service, 0),
            "instances_received": received.get(service) or 0,
            "error": "; ".join(state.get("error") for state in states if state.get("error")),
        })
    usage = shutil.disk_usage(settings.PACS_STORAGE_ROOT)
    stored = Study.objects.aggregate(bytes=Sum("size_bytes"), studies=Count("id"))
    return {
        "listeners": listeners,
        "processes": [
            {"key": p.key, "host": p.host, "pid": p.pid, "started_at": p.started_at, "heartbeat_at": p.heartbeat_at}
            for p in processes
        ],
        "storage": {
            "archive_bytes": stored["bytes"] or 0,
            "studies": stored["studies"],
            "disk_total_bytes": usage.total,
            "disk_used_bytes": usage.used,
            "disk_free_bytes": usage.free,
            "min_free_mb": archive_config_get().min_free_mb,
        },
    }


@extend_schema(tags=["dicom"])
class DicomStatusView(APIView):
    """``GET /api/dicom/status``: each listener (AE, port, up/down, associations, counts), storage."""

    permission_classes = [ControlPermission]

    @extend_schema(responses=s.DicomStatusSerializer)
    def get(self, request):
        return Response(dicom_status())


class _ListenerCommandView(APIView):
    permission_classes = [ControlPermission]
    action_name = ""

    @extend_schema(request=s.ListenerCommandSerializer, responses=s.DicomStatusSerializer,
                   examples=[OpenApiExample("One listener", value={"service": "storage"}),
                             OpenApiExample("Every listener", value={})])
    def post(self, request):
        data = s.ListenerCommandSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if not selectors.scp_process_list():
            return Response({"detail": "No runscp process is running: start it with 'python manage.py runscp'."},
                            status=status.HTTP_503_SERVICE_UNAVAILABLE)
        command = services.listener_command_issue(
            action=self.action_name, service=data.validated_data.get("service") or "", user=request.user
        )
        command = services.listener_command_wait(command, timeout=data.validated_data["timeout"])
        if not command.processed_at:
            return Response({"detail": f"runscp did not apply the {self.action_name} command in time",
                             "command": command.pk}, status=status.HTTP_504_GATEWAY_TIMEOUT)
        logger.info("dicom %s applied user=%s service=%s", self.action_name, request.user.username,
                    command.service or "all")
        return Response({"command": command.pk, "result": command.result, **dicom_status()})


@extend_schema(tags=["dicom"])
class DicomStartView(_ListenerCommandView):
    """``POST /api/dicom/start``: start one listener or all."""

    action_name = "start"


@extend_schema(tags=["dicom"])
class DicomStopView(_ListenerCommandView):
    """``POST /api/dicom/stop``: stop one listener or all (active associations are aborted)."""

    action_name = "stop"


@extend_schema(tags=["dicom"])
class DicomRestartView(_ListenerCommandView):
    """``POST /api/dicom/restart``: stop and start again, re-reading the configuration."""

    action_name = "restart"


def _settings_payload() -> dict:
    return {
        "listeners": s.ListenerSettingsSerializer(services.listener_config_list(), many=True).data,
        "allowed_callers": s.AllowedCallerSerializer(AllowedCaller.objects.select_related("listener"), many=True).data,
        "archive": {
            key: getattr(archive_config_get(fresh=True), key)
            for key in ("duplicate_policy", "update_attributes", "min_free_mb", "compression", "path_template")
        },
    }


@extend_schema(tags=["dicom"])
class DicomSettingsView(APIView):
    """``GET/PUT /api/dicom/settings``: AE titles, ports, allow lists, compression, duplicate policy.

    PUT validates everything before writing anything; ``"apply": true`` then
    restarts the listeners of every runscp so the new values are live.
    """

    permission_classes = [ControlPermission]

    @extend_schema(responses=s.DicomSettingsSerializer)
    def get(self, request):
        return Response(_settings_payload())

    @extend_schema(
        request=s.DicomSettingsSerializer, responses=s.DicomSettingsSerializer,
        examples=[OpenApiExample("Rename the storage AE and apply", value={
            "listeners": [{"service": "storage", "ae_title": "ARCHIVE", "port": 11112}], "apply": True})],
    )
    def put(self, request):
        data = s.DicomSettingsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        services_seen = [item["service"] for item in values.get("listeners", [])]
        if len(services_seen) != len(set(services_seen)):
            raise ValidationError({"listeners": ["each service at most once"]})
        ports = {}
        current = {row.service: row for row in services.listener_config_list()}
        for service, row in current.items():
            ports[service] = row.port
        for item in values.get("listeners", []):
            ports[item["service"]] = item.get("port", ports[item["service"]])
        taken = [p for p in ports.values() if p]
        if len(taken) != len(set(taken)):
            raise ValidationError({"listeners": ["two listeners cannot share a port"]})
        try:
            with transaction.atomic():
                for item in values.get("listeners", []):
                    fields = {k: v for k, v in item.items() if k != "service"}
                    services.listener_config_update(service=item["service"], **fields)
                if "allowed_callers" in values:
                    services.allowed_callers_replace(entries=[
                        {**entry, "service": entry.get("listener") or ""} for entry in values["allowed_callers"]
                    ])
                if values.get("archive"):
                    archive_config_update(**values["archive"])
        except DjangoValidationError as exc:
            raise _validation(exc) from None
        except ValueError as exc:
            raise ValidationError({"detail": [str(exc)]}) from None
        logger.info("dicom settings updated user=%s apply=%s", request.user.username, values.get("apply"))
        payload = _settings_payload()
        if values.get("apply") and selectors.scp_process_list():
            command = services.listener_command_issue(action="restart", user=request.user)
            command = services.listener_command_wait(command, timeout=15)
            payload["applied"] = bool(command.processed_at)
            payload["result"] = command.result
        return Response(payload)


# --- Nodes, jobs, associations -----------------------------------------------------


@extend_schema(tags=["nodes"])
class RemoteNodeViewSet(viewsets.ModelViewSet):
    """Remote DICOM nodes (modalities, workstations, PACS, printers)."""

    queryset = RemoteNode.objects.all()
    serializer_class = s.RemoteNodeSerializer
    permission_classes = [ModelPermissions]
    filterset_fields = ["ae_title", "enabled", "is_store_destination", "is_query_source", "is_move_destination",
                        "is_printer"]

    @extend_schema(request=None, responses={202: s.JobSerializer})
    @action(detail=True, methods=["post"])
    def verify(self, request, pk=None):
        """Queue a C-ECHO to this node (a ``verify`` job)."""
        node = self.get_object()
        try:
            job = job_service.job_create(kind="verify", params={"node": node.ae_title}, user=request.user,
                                         description=f"C-ECHO {node.ae_title}")
        except ValueError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(s.JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class JobFilter(django_filters.FilterSet):
    class Meta:
        model = Job
        fields = ["kind", "state"]


@extend_schema(tags=["jobs"])
class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin,
                 viewsets.GenericViewSet):
    """Background jobs: create send/query/retrieve/verify jobs, watch progress, retry, cancel."""

    queryset = Job.objects.all()
    serializer_class = s.JobSerializer
    permission_classes = [ModelPermissions]
    filterset_class = JobFilter

    @extend_schema(
        request=s.JobCreateSerializer, responses={201: s.JobSerializer},
        examples=[
            OpenApiExample("Send a study", value={"kind": "send", "params": {
                "node": "WORKSTATION", "study_instance_uids": ["1.2.840.113619.2.1"]}}),
            OpenApiExample("Query a node", value={"kind": "query", "params": {
                "node": "OTHERPACS", "level": "STUDY", "filters": {"PatientID": "P1"}}}),
            OpenApiExample("Retrieve a study", value={"kind": "retrieve", "params": {
                "node": "OTHERPACS", "level": "STUDY", "filters": {"StudyInstanceUID": "1.2.3"}, "method": "get"}}),
            OpenApiExample("Verify (C-ECHO)", value={"kind": "verify", "params": {"node": "OTHERPACS"}}),
        ],
    )
    def create(self, request, *args, **kwargs):
        data = s.JobCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        if values["kind"] not in job_service.job_kinds():
            raise ValidationError({"kind": [f"unknown job kind; known: {', '.join(job_service.job_kinds())}"]})
        job = job_service.job_create(kind=values["kind"], params=values["params"], user=request.user,
                                     description=values["description"], max_attempts=values["max_attempts"])
        return Response(s.JobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=s.JobSerializer)
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Re-run a finished (failed, cancelled or successful) job from the start."""
        job = self.get_object()
        try:
            job = job_service.job_retry(job_id=job.pk)
        except ValueError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(s.JobSerializer(job).data)

    @extend_schema(request=None, responses=s.JobSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a pending or running job."""
        job = self.get_object()
        if job.state in (JobState.SUCCESS, JobState.FAILURE):
            return Response({"detail": f"Job {job.pk} is already {job.state}"}, status=status.HTTP_409_CONFLICT)
        return Response(s.JobSerializer(job_service.job_cancel(job_id=job.pk)).data)


class AssociationFilter(django_filters.FilterSet):
    started_after = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="lte")

    class Meta:
        model = AssociationLog
        fields = ["service", "calling_aet", "called_aet", "status", "peer_address"]


@extend_schema(tags=["dicom"])
class AssociationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Audit records of received associations."""

    queryset = AssociationLog.objects.all()
    serializer_class = s.AssociationSerializer
    permission_classes = [ModelPermissions]
    filterset_class = AssociationFilter
