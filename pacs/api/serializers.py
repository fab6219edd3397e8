"""Serializers of the archive REST API (read shapes; writes go through services)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework import serializers

from pacs.models import ArchiveConfig, Instance, Patient, Series, Study
from pacs.services.studies import EDITABLE


class PatientSerializer(serializers.ModelSerializer):
    class Meta:
        model = Patient
        fields = [
            "id", "patient_id", "issuer_of_patient_id", "patient_name", "patient_name_alphabetic",
            "patient_name_ideographic", "patient_birth_date", "patient_sex", "number_of_patient_related_studies",
            "number_of_patient_related_series", "number_of_patient_related_instances", "created_at", "updated_at",
        ]
        read_only_fields = fields


class PatientBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Patient
        fields = ["id", "patient_id", "patient_name", "patient_birth_date", "patient_sex"]
        read_only_fields = fields


class StudySerializer(serializers.ModelSerializer):
    patient = PatientBriefSerializer(read_only=True)

    class Meta:
        model = Study
        fields = [
            "id", "patient", "study_instance_uid", "study_date", "study_time", "study_description",
            "accession_number", "study_id", "referring_physician_name", "institution_name", "modalities_in_study",
            "number_of_study_related_series", "number_of_study_related_instances", "size_bytes", "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class SeriesSerializer(serializers.ModelSerializer):
    study_instance_uid = serializers.CharField(source="study.study_instance_uid", read_only=True)

    class Meta:
        model = Series
        fields = [
            "id", "study", "study_instance_uid", "series_instance_uid", "modality", "series_number",
            "series_description", "series_date", "series_time", "body_part_examined", "protocol_name",
            "station_name", "manufacturer", "source_aet", "source_address", "number_of_series_related_instances",
            "created_at",
        ]
        read_only_fields = fields


class InstanceSerializer(serializers.ModelSerializer):
    series_instance_uid = serializers.CharField(source="series.series_instance_uid", read_only=True)
    study_instance_uid = serializers.CharField(source="series.study.study_instance_uid", read_only=True)

    class Meta:
        model = Instance
        fields = [
            "id", "series", "series_instance_uid", "study_instance_uid", "sop_class_uid", "sop_instance_uid",
            "instance_number", "transfer_syntax_uid", "original_transfer_syntax_uid", "rows", "columns",
            "number_of_frames", "bits_allocated", "photometric_interpretation", "file_size", "checksum",
            "received_at", "source_aet",
        ]
        read_only_fields = fields


class DemographicsSerializer(serializers.Serializer):
    """Attributes an edit may change, as DICOM keywords (written into the files too)."""

    PatientName = serializers.CharField(required=False, allow_blank=True, max_length=324)
    PatientID = serializers.CharField(required=False, max_length=64)
    PatientBirthDate = serializers.RegexField(r"^(\d{8})?$", required=False, allow_blank=True)
    PatientSex = serializers.ChoiceField(choices=["M", "F", "O", ""], required=False, allow_blank=True)
    StudyDescription = serializers.CharField(required=False, allow_blank=True, max_length=64)
    AccessionNumber = serializers.CharField(required=False, allow_blank=True, max_length=16)
    ReferringPhysicianName = serializers.CharField(required=False, allow_blank=True, max_length=324)
    StudyID = serializers.CharField(required=False, allow_blank=True, max_length=16)

    def validate(self, attrs):
        unknown = set(self.initial_data) - set(EDITABLE)
        if unknown:
            raise serializers.ValidationError({key: ["not an editable attribute"] for key in sorted(unknown)})
        if not attrs:
            raise serializers.ValidationError({"non_field_errors": ["nothing to change"]})
        return attrs


class DeleteResultSerializer(serializers.Serializer):
    instances = serializers.IntegerField()
    series = serializers.IntegerField()
    studies = serializers.IntegerField()
    patients = serializers.IntegerField()
    files = serializers.IntegerField()


class ArchiveConfigSerializer(serializers.ModelSerializer):
    cors_allowed_origins = serializers.ListField(
        child=serializers.CharField(max_length=255, allow_blank=True), required=False, max_length=200,
        help_text='Browser origins allowed to call the HTTP API (CORS), e.g. ["http://viewer.example:3000"].',
    )

    class Meta:
        model = ArchiveConfig
        fields = ["duplicate_policy", "update_attributes", "min_free_mb", "compression", "path_template",
                  "cors_allowed_origins", "external_viewer_url", "public_url", "updated_at"]
        read_only_fields = ["updated_at"]


class UserSerializer(serializers.ModelSerializer):
    password = serializers.CharField(write_only=True, required=False, min_length=8, style={"input_type": "password"})
    groups = serializers.SlugRelatedField(slug_field="name", many=True, queryset=Group.objects.all(), required=False)

    class Meta:
        model = get_user_model()
        fields = ["id", "username", "email", "first_name", "last_name", "is_active", "is_staff", "is_superuser",
                  "groups", "password", "last_login", "date_joined"]
        read_only_fields = ["last_login", "date_joined"]

    def create(self, validated_data):
        groups = validated_data.pop("groups", [])
        password = validated_data.pop("password", None)
        user = get_user_model().objects.create_user(**validated_data, password=password)
        user.groups.set(groups)
        return user

    def update(self, instance, validated_data):
        groups = validated_data.pop("groups", None)
        password = validated_data.pop("password", None)
        for key, value in validated_data.items():
            setattr(instance, key, value)
        if password:
            instance.set_password(password)
        instance.save()
        if groups is not None:
            instance.groups.set(groups)
        return instance


class LogFileSerializer(serializers.Serializer):
    service = serializers.CharField()
    name = serializers.CharField()
    size = serializers.IntegerField()
    modified = serializers.DateTimeField()
    current = serializers.BooleanField()


class LogTailSerializer(serializers.Serializer):
    service = serializers.CharField()
    file = serializers.CharField()
    lines = serializers.ListField(child=serializers.CharField())
