"""Print management records: print jobs, their live film boxes and image boxes, composed films.

A ``PrintJob`` is one Basic Film Session received by the print listener (PS3.4
H.4.1) with the session attributes, who sent it and how it went.  ``FilmBox``
and ``ImageBox`` hold the live state of the session's boxes while the
association lasts (PS3.4 H.4.2, H.4.3); every N-ACTION print turns each film
box into a ``Film``: a snapshot of its attributes and image boxes (with the
received pixels kept under ``PACS_DATA_DIR/print/``), the composed Secondary
Capture instance in the archive and a PNG preview.

Rows are written only by :mod:`printing.services`; ``PrintForwardRule`` is
configuration edited in the admin.
"""

from __future__ import annotations

from django.db import models

from printing.choices import PrintJobStatus


class PrintJob(models.Model):
    """One Basic Film Session (PS3.4 H.4.1) and its outcome.

    Created by the film session N-CREATE; PENDING while the session is open,
    PRINTING while films are composed, DONE once films are printed, FAILURE
    with ``failure_reason`` when a request of the session fails or the session
    ends without a printed film.
    """

    film_session_uid = models.CharField(max_length=64, db_index=True)
    meta_sop_class_uid = models.CharField(
        max_length=64, help_text="Basic Grayscale or Basic Color Print Management Meta SOP Class."
    )
    calling_aet = models.CharField(max_length=16, db_index=True)
    called_aet = models.CharField(max_length=16, blank=True)
    peer_address = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=16, choices=PrintJobStatus.choices, default=PrintJobStatus.PENDING, db_index=True
    )
    failure_reason = models.CharField(max_length=255, blank=True)
    errors = models.JSONField(default=list, blank=True, help_text="Every failed request of the session.")
    # Basic Film Session attributes (PS3.3 C.13.1)
    number_of_copies = models.PositiveIntegerField(default=1)
    print_priority = models.CharField(max_length=16, blank=True)
    medium_type = models.CharField(max_length=16, blank=True)
    film_destination = models.CharField(max_length=16, blank=True)
    film_session_label = models.CharField(max_length=64, blank=True)
    owner_id = models.CharField(max_length=64, blank=True)
    attributes = models.JSONField(default=dict, blank=True, help_text="Every session attribute received (DICOM JSON).")
    number_of_films = models.PositiveIntegerField(default=0)
    number_of_images = models.PositiveIntegerField(default=0)
    study_instance_uid = models.CharField(
        max_length=64, blank=True, help_text="Archive study holding the composed films."
    )
    series_instance_uid = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    printed_at = models.DateTimeField(null=True, blank=True)
    session_closed_at = models.DateTimeField(
        null=True, blank=True, help_text="Film session N-DELETE or association end."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Print job list filtered by status, newest first.
            models.Index(fields=["status", "-created_at"], name="printing_job_status_created"),
        ]

    def __str__(self) -> str:
        return f"Print job {self.pk} from {self.calling_aet} ({self.status})"

    @property
    def is_color(self) -> bool:
        return self.meta_sop_class_uid == "1.2.840.10008.5.1.1.18"


class FilmBox(models.Model):
    """A Basic Film Box SOP instance (PS3.4 H.4.2) of an open film session.

    Deleted by its N-DELETE, the session N-DELETE or the association end; what
    was printed survives as ``Film`` snapshots.
    """

    print_job = models.ForeignKey(to="printing.PrintJob", on_delete=models.CASCADE, related_name="film_boxes")
    sop_instance_uid = models.CharField(max_length=64, db_index=True)
    image_display_format = models.CharField(max_length=64)
    film_orientation = models.CharField(max_length=16)
    film_size_id = models.CharField(max_length=16)
    attributes = models.JSONField(default=dict, blank=True, help_text="Film box attributes (DICOM JSON).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["print_job", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["print_job", "sop_instance_uid"], name="%(app_label)s_%(class)s_unique_job_uid"
            ),
        ]

    def __str__(self) -> str:
        return f"Film box {self.sop_instance_uid} ({self.image_display_format})"


class ImageBox(models.Model):
    """A Basic Grayscale or Color Image Box SOP instance (PS3.4 H.4.3) of a film box."""

    film_box = models.ForeignKey(to="printing.FilmBox", on_delete=models.CASCADE, related_name="image_boxes")
    sop_instance_uid = models.CharField(max_length=64, db_index=True)
    sop_class_uid = models.CharField(max_length=64)
    image_box_position = models.PositiveIntegerField()
    attributes = models.JSONField(default=dict, blank=True, help_text="Image box attributes (DICOM JSON).")
    pixel_file = models.CharField(
        max_length=255, blank=True, help_text="Received preformatted image, relative to the print folder."
    )
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["film_box", "image_box_position"]
        constraints = [
            models.UniqueConstraint(
                fields=["film_box", "image_box_position"], name="%(app_label)s_%(class)s_unique_box_position"
            ),
        ]

    def __str__(self) -> str:
        return f"Image box {self.image_box_position} of {self.film_box_id}"


class AnnotationBox(models.Model):
    """A Basic Annotation Box SOP instance (PS3.4 H.4.5): one text line on a film box.

    Created with its film box; the SCU's N-SET chooses its Annotation Position and text.
    """

    film_box = models.ForeignKey(to="printing.FilmBox", on_delete=models.CASCADE, related_name="annotation_boxes")
    sop_instance_uid = models.CharField(max_length=64, db_index=True)
    annotation_position = models.PositiveIntegerField(null=True, blank=True)
    text_string = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["film_box", "id"]

    def __str__(self) -> str:
        return f"Annotation {self.annotation_position} of {self.film_box_id}"


class Film(models.Model):
    """One printed film: the film box as it was printed and its composition.

    ``film_box`` and ``image_boxes`` are snapshots (attributes, pixel files) so
    the film can be forwarded with its original layout after the session ended.
    """

    print_job = models.ForeignKey(to="printing.PrintJob", on_delete=models.CASCADE, related_name="films")
    film_number = models.PositiveIntegerField(help_text="1-based order within the print job.")
    film_box_uid = models.CharField(max_length=64)
    print_job_sop_instance_uid = models.CharField(
        max_length=64, db_index=True, help_text="Print Job SOP instance answered to the N-ACTION (PS3.4 H.4.6)."
    )
    image_display_format = models.CharField(max_length=64)
    film_orientation = models.CharField(max_length=16)
    film_size_id = models.CharField(max_length=16)
    film_box = models.JSONField(default=dict, help_text="Film box attributes as printed (DICOM JSON).")
    image_boxes = models.JSONField(
        default=list, help_text="[{position, sop_class_uid, attributes, pixel_file}] as printed."
    )
    presentation_lut = models.JSONField(
        null=True, blank=True, help_text="Referenced Presentation LUT (DICOM JSON), if any."
    )
    annotations = models.JSONField(default=list, blank=True, help_text="[{position, text}] as printed.")
    number_of_images = models.PositiveIntegerField(default=0)
    rows = models.PositiveIntegerField()
    columns = models.PositiveIntegerField()
    preview_file = models.CharField(max_length=255, help_text="PNG preview, relative to the print folder.")
    sop_instance_uid = models.CharField(max_length=64, help_text="Secondary Capture instance in the archive.")
    instance = models.ForeignKey(to="pacs.Instance", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["print_job", "film_number"]
        constraints = [
            models.UniqueConstraint(fields=["print_job", "film_number"], name="%(app_label)s_%(class)s_unique_number"),
        ]

    def __str__(self) -> str:
        return f"Film {self.film_number} of print job {self.print_job_id}"


class PrintForwardRule(models.Model):
    """Print gateway rule: films printed by ``calling_aet`` are forwarded to ``printer``.

    Configuration, edited in the admin; applied by ``printing.services`` after each print.
    """

    calling_aet = models.CharField(max_length=16, help_text="Calling AE title of the modality; * = any.")
    printer = models.ForeignKey(
        to="dimse.RemoteNode",
        on_delete=models.CASCADE,
        related_name="print_forward_rules",
        limit_choices_to={"is_printer": True},
    )
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["calling_aet", "id"]

    def __str__(self) -> str:
        return f"{self.calling_aet} -> {self.printer}"
