"""The archive index: Patient -> Study -> Series -> Instance (PS3.3 A.1.2 IEs).

Rows are written only by services in :mod:`pacs.services` (``instance_ingest``
and the services that edit or delete what it created).  Field names are the
snake_case DICOM keywords; text is stored as decoded Unicode.  Every attribute
matched by C-FIND, QIDO-RS or the study list is indexed.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from pacs.choices import Compression, DuplicatePolicy, JobState


class Patient(models.Model):
    """Patient IE.  Identity is (PatientID, IssuerOfPatientID).

    Rows are written only by ``instance_ingest`` and the demographics/delete services.
    """

    patient_id = models.CharField(max_length=64, blank=True, db_index=True)
    issuer_of_patient_id = models.CharField(max_length=64, blank=True, default="")
    # Full decoded PN value ("WANG^XIAOMING=王^小明") and its component groups.
    patient_name = models.CharField(max_length=324, blank=True, db_index=True)
    patient_name_alphabetic = models.CharField(max_length=324, blank=True, db_index=True)
    patient_name_ideographic = models.CharField(max_length=324, blank=True, db_index=True)
    patient_name_phonetic = models.CharField(max_length=324, blank=True)
    patient_birth_date = models.DateField(null=True, blank=True, db_index=True)
    patient_sex = models.CharField(max_length=16, blank=True, db_index=True)
    number_of_patient_related_studies = models.PositiveIntegerField(default=0)
    number_of_patient_related_series = models.PositiveIntegerField(default=0)
    number_of_patient_related_instances = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["patient_name", "patient_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient_id", "issuer_of_patient_id"],
                name="%(app_label)s_%(class)s_unique_patient_id_issuer",
            )
        ]

    def __str__(self) -> str:
        return f"{self.patient_name or '(no name)'} [{self.patient_id}]"


class Study(models.Model):
    """Study IE.  Counts and ModalitiesInStudy are maintained by services only.

    Rows are written only by ``instance_ingest`` and the study edit/delete services.
    """

    patient = models.ForeignKey(to="pacs.Patient", on_delete=models.CASCADE, related_name="studies")
    study_instance_uid = models.CharField(max_length=64, unique=True)
    study_date = models.DateField(null=True, blank=True, db_index=True)
    study_time = models.TimeField(null=True, blank=True)
    study_description = models.CharField(max_length=64 * 4, blank=True, db_index=True)
    accession_number = models.CharField(max_length=64, blank=True, db_index=True)
    study_id = models.CharField(max_length=16 * 4, blank=True, db_index=True)
    referring_physician_name = models.CharField(max_length=324, blank=True, db_index=True)
    institution_name = models.CharField(max_length=64 * 4, blank=True)
    # Backslash-joined, sorted: "CT\SR".  Matched with icontains on single values.
    modalities_in_study = models.CharField(max_length=128, blank=True, db_index=True)
    number_of_study_related_series = models.PositiveIntegerField(default=0)
    number_of_study_related_instances = models.PositiveIntegerField(default=0)
    size_bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-study_date", "-study_time", "-id"]
        verbose_name_plural = "studies"
        indexes = [
            # Study list default ordering and date-range QIDO/C-FIND.
            models.Index(fields=["-study_date", "-study_time"], name="pacs_study_date_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.study_instance_uid} {self.study_description}".strip()


class Series(models.Model):
    """Series IE, with the sender (calling AE, address) that delivered it.

    Rows are written only by ``instance_ingest`` and the delete services.
    """

    study = models.ForeignKey(to="pacs.Study", on_delete=models.CASCADE, related_name="series")
    series_instance_uid = models.CharField(max_length=64, unique=True)
    modality = models.CharField(max_length=16, blank=True, db_index=True)
    series_number = models.IntegerField(null=True, blank=True, db_index=True)
    series_description = models.CharField(max_length=64 * 4, blank=True, db_index=True)
    series_date = models.DateField(null=True, blank=True)
    series_time = models.TimeField(null=True, blank=True)
    body_part_examined = models.CharField(max_length=16 * 4, blank=True, db_index=True)
    protocol_name = models.CharField(max_length=64 * 4, blank=True)
    station_name = models.CharField(max_length=16 * 4, blank=True)
    manufacturer = models.CharField(max_length=64 * 4, blank=True)
    performed_procedure_step_start_date = models.DateField(null=True, blank=True)
    source_aet = models.CharField(max_length=16, blank=True, db_index=True)
    source_address = models.CharField(max_length=64, blank=True)
    number_of_series_related_instances = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["series_number", "id"]
        verbose_name_plural = "series"

    def __str__(self) -> str:
        return f"{self.modality} #{self.series_number} {self.series_description}".strip()


class Instance(models.Model):
    """Composite SOP instance: one archived file, kept byte-for-byte as received.

    Rows are written only by ``instance_ingest`` (and compression/delete services);
    a row exists only for a complete, fsynced file.
    """

    series = models.ForeignKey(to="pacs.Series", on_delete=models.CASCADE, related_name="instances")
    sop_class_uid = models.CharField(max_length=64, db_index=True)
    sop_instance_uid = models.CharField(max_length=64, unique=True)
    instance_number = models.IntegerField(null=True, blank=True, db_index=True)
    transfer_syntax_uid = models.CharField(max_length=64)
    # Transfer syntax as first received, before any archive compression.
    original_transfer_syntax_uid = models.CharField(max_length=64, blank=True)
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    number_of_frames = models.PositiveIntegerField(null=True, blank=True)
    bits_allocated = models.PositiveSmallIntegerField(null=True, blank=True)
    photometric_interpretation = models.CharField(max_length=16, blank=True)
    # Relative to PACS_STORAGE_ROOT; built only from validated UIDs / sanitised values.
    file_path = models.CharField(max_length=512)
    file_size = models.BigIntegerField()
    checksum = models.CharField(
        max_length=64,
        help_text="SHA-256 of the stored file, hex (files archived before December 2026: their MD5, 32 digits)",
    )
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    source_aet = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["instance_number", "id"]

    def __str__(self) -> str:
        return self.sop_instance_uid


class ArchiveConfig(models.Model):
    """Runtime-editable archive policies (one row, pk=1), seeded from PACS_* settings.

    Written by ``archive_config_update`` and the Django admin.
    """

    duplicate_policy = models.CharField(
        max_length=16, choices=DuplicatePolicy.choices, default=DuplicatePolicy.KEEP_FIRST
    )
    update_attributes = models.BooleanField(
        default=True, help_text="Newer instances update patient/study attributes in the index."
    )
    min_free_mb = models.PositiveIntegerField(
        default=1024, help_text="Refuse storage with 0xA700 below this much free space (MiB)."
    )
    compression = models.CharField(max_length=20, choices=Compression.choices, default=Compression.NONE)
    path_template = models.CharField(
        max_length=256,
        default="{StudyInstanceUID}/{SeriesInstanceUID}/{SOPInstanceUID}.dcm",
        help_text="Archive layout. Placeholders: {PatientID} {StudyInstanceUID} {StudyDate} "
        "{SeriesInstanceUID} {Modality} {SOPInstanceUID}; must contain {SOPInstanceUID}.",
    )
    # Web and viewers (seeded from PACS_CORS_ALLOWED_ORIGINS, PACS_EXTERNAL_VIEWER_URL, PACS_PUBLIC_URL).
    cors_allowed_origins = models.JSONField(
        default=list, blank=True,
        help_text='Browser origins allowed to call the HTTP API (CORS), e.g. ["http://viewer.example:3000"].',
    )
    external_viewer_url = models.CharField(
        max_length=1024, blank=True, default="",
        help_text="URL template of the study list's external viewer link (e.g. RadiAnt "
        "radiant://?n=pstv&v=0020000D&v={StudyInstanceUID}). Placeholders: {StudyInstanceUID} "
        "{AccessionNumber} {PatientID} {base}. Empty hides the link.",
    )
    public_url = models.CharField(
        max_length=255, blank=True, default="",
        help_text="Public base URL for RetrieveURL/BulkDataURI behind a proxy; empty = the request's host.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "archive configuration"
        verbose_name_plural = "archive configuration"

    def __str__(self) -> str:
        return "Archive configuration"

    def clean(self) -> None:
        from pacs.services.config import cors_origins_clean, external_viewer_url_clean, public_url_clean
        from pacs.storage import path_template_validate

        path_template_validate(self.path_template)
        errors = {}
        for name, clean in (("cors_allowed_origins", cors_origins_clean),
                            ("external_viewer_url", external_viewer_url_clean), ("public_url", public_url_clean)):
            try:
                setattr(self, name, clean(getattr(self, name)))
            except ValidationError as exc:
                errors[name] = exc.messages
        if errors:
            raise ValidationError(errors)


class Job(models.Model):
    """A background job (send, query, retrieve, verify, print forwarding, compression...).

    Written only by :mod:`pacs.services.jobs`; run by the django-q2 cluster through
    ``pacs.tasks.job_run``, which dispatches on ``kind`` to the runner each app
    registers with ``job_kind_register`` in its ``AppConfig.ready``.
    """

    kind = models.CharField(max_length=32, db_index=True)
    params = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.PENDING, db_index=True)
    description = models.CharField(max_length=255, blank=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_failed = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    result = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        to=settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.state})"
