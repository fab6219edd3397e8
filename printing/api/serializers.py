"""Serializers of the print job API (read-only views of ``printing`` rows)."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from printing.models import Film, PrintJob


class FilmSerializer(serializers.ModelSerializer):
    preview_url = serializers.SerializerMethodField()
    dicom_url = serializers.SerializerMethodField()

    class Meta:
        model = Film
        fields = [
            "film_number",
            "image_display_format",
            "film_size_id",
            "film_orientation",
            "rows",
            "columns",
            "number_of_images",
            "sop_instance_uid",
            "created_at",
            "preview_url",
            "dicom_url",
        ]
        read_only_fields = fields

    def get_preview_url(self, film: Film) -> str:
        return reverse("print-job-preview", args=[film.print_job_id]) + f"?film={film.film_number}"

    def get_dicom_url(self, film: Film) -> str:
        return reverse("print-job-dicom", args=[film.print_job_id]) + f"?film={film.film_number}"


class FilmDetailSerializer(FilmSerializer):
    class Meta(FilmSerializer.Meta):
        fields = [
            *FilmSerializer.Meta.fields,
            "film_box_uid",
            "print_job_sop_instance_uid",
            "film_box",
            "image_boxes",
            "presentation_lut",
            "annotations",
        ]
        read_only_fields = fields


class PrintJobSerializer(serializers.ModelSerializer):
    films = FilmSerializer(many=True, read_only=True)

    class Meta:
        model = PrintJob
        fields = [
            "id",
            "film_session_uid",
            "calling_aet",
            "called_aet",
            "peer_address",
            "status",
            "failure_reason",
            "is_color",
            "number_of_copies",
            "print_priority",
            "medium_type",
            "film_destination",
            "film_session_label",
            "number_of_films",
            "number_of_images",
            "study_instance_uid",
            "created_at",
            "printed_at",
            "session_closed_at",
            "films",
        ]
        read_only_fields = fields


class PrintJobDetailSerializer(PrintJobSerializer):
    films = FilmDetailSerializer(many=True, read_only=True)

    class Meta(PrintJobSerializer.Meta):
        fields = [*PrintJobSerializer.Meta.fields, "errors", "attributes", "meta_sop_class_uid"]
        read_only_fields = fields


class ReprintSerializer(serializers.Serializer):
    node = serializers.IntegerField(min_value=1, max_value=2**63 - 1, help_text="Remote node (a printer) to print on.")
    films = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=999_999),
        required=False,
        default=list,
        help_text="Film numbers to send; default every film.",
    )
