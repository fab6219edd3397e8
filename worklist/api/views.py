"""REST API of the worklist: items (CRUD) and MPPS records (read-only).

Both JSON forms are accepted and produced: keywords (``application/json``) and
DICOM JSON (``application/dicom+json``).  Writes go through
:mod:`worklist.services.items`; a rejected item answers 400 with messages
keyed by DICOM keyword and saves nothing.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from pacs.matching import MatchingError
from worklist.api.media import DICOM_JSON, DicomJsonParser, DicomJsonRenderer
from worklist.api.serializers import PerformedProcedureStepSerializer, WorklistItemSerializer
from worklist.exceptions import ItemInvalid
from worklist.matching import ITEM_KEYS, STEP_KEYS
from worklist.models import PerformedProcedureStep, WorklistItem
from worklist.selectors import performed_step_list, worklist_item_get, worklist_item_list
from worklist.services.items import worklist_item_create, worklist_item_delete, worklist_item_update

_ITEM_FIELDS = [key.field for key in ITEM_KEYS.values()]
_NOT_FILTERS = {"limit", "offset", "format", "ordering"}
_FILTER_PARAMETERS = [
    OpenApiParameter(keyword, OpenApiTypes.STR, description=f"DICOM matching on {keyword} ({key.vr})")
    for keyword, key in {**ITEM_KEYS, **STEP_KEYS}.items()
]
_EXAMPLE = OpenApiExample(
    "CT order",
    value={
        "PatientName": "WANG^XIAOMING=王^小明",
        "PatientID": "P001",
        "PatientBirthDate": "19800101",
        "PatientSex": "M",
        "AccessionNumber": "A1",
        "RequestedProcedureID": "RP1",
        "RequestedProcedureDescription": "CT chest",
        "ScheduledProcedureStepSequence": [
            {
                "ScheduledProcedureStepID": "SPS1",
                "Modality": "CT",
                "ScheduledStationAETitle": "CT01",
                "ScheduledProcedureStepStartDate": "20261121",
                "ScheduledProcedureStepStartTime": "090000",
            }
        ],
    },
    request_only=True,
)
_WRITE_REQUEST = {"application/json": WorklistItemSerializer, DICOM_JSON: OpenApiTypes.OBJECT}
_ERRORS = OpenApiResponse(description="Invalid item: messages keyed by DICOM keyword; nothing saved.")


def _invalid(exc: ItemInvalid) -> ValidationError:
    return ValidationError(exc.errors)


def _split(validated: dict) -> tuple[dict, list[dict] | None]:
    fields = dict(validated)
    steps = fields.pop("steps", None)
    return fields, steps


@extend_schema_view(
    list=extend_schema(
        summary="List worklist items",
        description="Items with at least one scheduled step matching every DICOM keyword parameter "
        "(wildcards * ?, date/time ranges a-b, a-, -b, as in C-FIND). Every status unless "
        "ScheduledProcedureStepStatus is given.",
        parameters=_FILTER_PARAMETERS,
    ),
    retrieve=extend_schema(summary="Read a worklist item"),
    create=extend_schema(summary="Create a worklist item", request=_WRITE_REQUEST, examples=[_EXAMPLE],
                         responses={201: WorklistItemSerializer, 400: _ERRORS}),
    update=extend_schema(summary="Replace a worklist item", request=_WRITE_REQUEST,
                         responses={200: WorklistItemSerializer, 400: _ERRORS}),
    partial_update=extend_schema(summary="Change some attributes of a worklist item", request=_WRITE_REQUEST,
                                 responses={200: WorklistItemSerializer, 400: _ERRORS}),
    destroy=extend_schema(summary="Delete a worklist item"),
)
class WorklistItemViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Modality worklist items (Requested Procedures with their Scheduled Procedure Steps)."""

    serializer_class = WorklistItemSerializer
    parser_classes = [JSONParser, DicomJsonParser]
    renderer_classes = [JSONRenderer, DicomJsonRenderer]
    filter_backends: list = []
    lookup_value_regex = r"[0-9]{1,18}"
    queryset = WorklistItem.objects.none()  # schema generation; real rows from selectors

    def get_queryset(self):
        filters = {k: v for k, v in self.request.query_params.items() if k not in _NOT_FILTERS}
        try:
            return worklist_item_list(filters)
        except MatchingError as exc:
            raise ValidationError({"detail": exc.message}) from None

    def get_object(self):
        try:
            return worklist_item_get(int(self.kwargs["pk"]))
        except WorklistItem.DoesNotExist:
            raise Http404("No such worklist item") from None

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields, steps = _split(serializer.validated_data)
        try:
            item = worklist_item_create(fields=fields, steps=steps or [])
        except ItemInvalid as exc:
            raise _invalid(exc) from None
        return Response(self.get_serializer(worklist_item_get(item.pk)).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        partial = kwargs.pop("partial", False)
        item = self.get_object()
        serializer = self.get_serializer(item, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        fields, steps = _split(serializer.validated_data)
        if not partial:
            # PUT replaces the item: attributes it omits are cleared (the Study UID is kept).
            omitted = {name: None for name in _ITEM_FIELDS if name not in fields and name != "study_instance_uid"}
            fields = omitted | fields
        try:
            worklist_item_update(item_id=item.pk, fields=fields, steps=steps)
        except ItemInvalid as exc:
            raise _invalid(exc) from None
        return Response(self.get_serializer(worklist_item_get(item.pk)).data)

    def partial_update(self, request, *args, **kwargs):
        kwargs["partial"] = True
        return self.update(request, *args, **kwargs)

    def destroy(self, request, *args, **kwargs):
        try:
            worklist_item_delete(item_id=int(self.kwargs["pk"]))
        except WorklistItem.DoesNotExist:
            raise Http404("No such worklist item") from None
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(summary="List MPPS records (written by modalities with N-CREATE/N-SET)"),
    retrieve=extend_schema(summary="Read one MPPS record by its SOP Instance UID"),
)
class PerformedProcedureStepViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Modality Performed Procedure Steps received by the worklist listener (read-only)."""

    serializer_class = PerformedProcedureStepSerializer
    filter_backends: list = []
    lookup_field = "sop_instance_uid"
    lookup_value_regex = r"[0-9.]{1,64}"
    queryset = PerformedProcedureStep.objects.none()

    def get_queryset(self):
        return performed_step_list()

    def get_object(self):
        try:
            return self.get_queryset().get(sop_instance_uid=self.kwargs["sop_instance_uid"])
        except PerformedProcedureStep.DoesNotExist:
            raise Http404("No such MPPS instance") from None
