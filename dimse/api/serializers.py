"""Serializers of the DIMSE control API, nodes, jobs and association records."""

from __future__ import annotations

from rest_framework import serializers

from dimse.models import AllowedCaller, AssociationLog, Listener, ListenerService, RemoteNode
from pacs.models import Job


class RemoteNodeSerializer(serializers.ModelSerializer):
    class Meta:
        model = RemoteNode
        fields = [
            "id", "ae_title", "host", "port", "description", "is_store_destination", "is_query_source",
            "is_move_destination", "is_printer", "preferred_transfer_syntax", "charset_override", "calling_aet",
            "enabled", "created_at", "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]


class JobSerializer(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = [
            "id", "kind", "params", "state", "description", "progress_done", "progress_failed", "progress_total",
            "result", "errors", "attempts", "max_attempts", "next_attempt_at", "created_at", "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class JobCreateSerializer(serializers.Serializer):
    kind = serializers.CharField(max_length=32, help_text="send, query, retrieve, verify, ...")
    params = serializers.DictField(required=False, default=dict)
    description = serializers.CharField(required=False, allow_blank=True, max_length=255, default="")
    max_attempts = serializers.IntegerField(required=False, min_value=1, max_value=20, default=3)


class AssociationSerializer(serializers.ModelSerializer):
    class Meta:
        model = AssociationLog
        fields = [
            "id", "service", "calling_aet", "called_aet", "peer_address", "peer_port", "status", "reason",
            "started_at", "ended_at", "instances_received", "bytes_received", "requests", "failures", "process",
        ]
        read_only_fields = fields


class ListenerCommandSerializer(serializers.Serializer):
    service = serializers.ChoiceField(choices=ListenerService.choices, required=False, allow_blank=True,
                                      help_text="Empty: every listener")
    timeout = serializers.FloatField(required=False, min_value=0.5, max_value=60, default=10)


class ListenerSettingsSerializer(serializers.ModelSerializer):
    class Meta:
        model = Listener
        fields = ["service", "ae_title", "port", "enabled", "require_called_aet", "restrict_callers",
                  "max_associations", "acse_timeout", "dimse_timeout", "network_timeout"]
        # PUT may name only what changes: every field but the service is optional.
        extra_kwargs = {
            "service": {"validators": []},
            **{name: {"required": False} for name in (
                "ae_title", "port", "enabled", "require_called_aet", "restrict_callers", "max_associations",
                "acse_timeout", "dimse_timeout", "network_timeout")},
        }


class AllowedCallerSerializer(serializers.ModelSerializer):
    listener = serializers.ChoiceField(choices=ListenerService.choices, required=False, allow_blank=True,
                                       allow_null=True, help_text="Service of the listener; empty = every listener")

    class Meta:
        model = AllowedCaller
        fields = ["listener", "ae_title", "host", "description"]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["listener"] = instance.listener.service if instance.listener_id else ""
        return data


class ArchivePolicySerializer(serializers.Serializer):
    duplicate_policy = serializers.CharField(required=False)
    update_attributes = serializers.BooleanField(required=False)
    min_free_mb = serializers.IntegerField(required=False, min_value=0)
    compression = serializers.CharField(required=False)
    path_template = serializers.CharField(required=False, max_length=256)


class DicomSettingsSerializer(serializers.Serializer):
    listeners = ListenerSettingsSerializer(many=True, required=False)
    allowed_callers = AllowedCallerSerializer(many=True, required=False)
    archive = ArchivePolicySerializer(required=False)
    apply = serializers.BooleanField(required=False, default=False,
                                     help_text="Restart the listeners of every runscp to apply the change")


class DicomStatusSerializer(serializers.Serializer):
    listeners = serializers.ListField(child=serializers.DictField())
    processes = serializers.ListField(child=serializers.DictField())
    storage = serializers.DictField()
