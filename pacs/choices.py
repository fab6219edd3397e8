"""Choices shared by the archive models and settings."""

from django.db import models


class DuplicatePolicy(models.TextChoices):
    """What ingest does with a SOP Instance UID that is already archived."""

    KEEP_FIRST = "keep-first", "Keep the first copy (answer success)"
    REPLACE = "replace", "Replace the stored copy"
    REJECT = "reject", "Reject the new copy (0x0111)"


class Compression(models.TextChoices):
    """Background compression applied to what is archived (lossless unless named)."""

    NONE = "none", "None (keep as received)"
    RLE = "rle", "RLE Lossless"
    JPEG_LS_LOSSLESS = "jpeg-ls-lossless", "JPEG-LS Lossless"
    J2K_LOSSLESS = "j2k-lossless", "JPEG 2000 Lossless"
    J2K_LOSSY = "j2k-lossy", "JPEG 2000 (lossy)"


class IngestStatus(models.TextChoices):
    STORED = "stored", "Stored"
    DUPLICATE = "duplicate", "Duplicate kept first"
    REPLACED = "replaced", "Replaced"


class JobState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    RETRYING = "retrying", "Waiting to retry"
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"
    CANCELLED = "cancelled", "Cancelled"
