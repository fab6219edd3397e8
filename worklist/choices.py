"""Choices of the worklist app (PS3.3 C.4.10, C.4.14, C.7.1.1)."""

from django.db import models


class StepStatus(models.TextChoices):
    """Scheduled Procedure Step Status (0040,0020) as this archive tracks it.

    SCHEDULED and ARRIVED steps are offered to modalities by default; MPPS moves
    a step to IN PROGRESS and then COMPLETED or DISCONTINUED (PS3.4 F.7).
    """

    SCHEDULED = "SCHEDULED", "Scheduled"
    ARRIVED = "ARRIVED", "Arrived"
    IN_PROGRESS = "IN PROGRESS", "In progress"
    COMPLETED = "COMPLETED", "Completed"
    DISCONTINUED = "DISCONTINUED", "Discontinued"


# Offered to a modality when its query does not name a status.
SCHEDULABLE_STATUSES = (StepStatus.SCHEDULED, StepStatus.ARRIVED)
# Terminal states: housekeeping removes items whose steps all reached one.
FINAL_STATUSES = (StepStatus.COMPLETED, StepStatus.DISCONTINUED)


class PerformedStepStatus(models.TextChoices):
    """Performed Procedure Step Status (0040,0252), PS3.3 C.4.14."""

    IN_PROGRESS = "IN PROGRESS", "In progress"
    COMPLETED = "COMPLETED", "Completed"
    DISCONTINUED = "DISCONTINUED", "Discontinued"


class PatientSex(models.TextChoices):
    """Patient's Sex (0010,0040) enumerated values, PS3.3 C.7.1.1."""

    MALE = "M", "Male"
    FEMALE = "F", "Female"
    OTHER = "O", "Other"


class Priority(models.TextChoices):
    """Requested Procedure Priority (0040,1003) enumerated values, PS3.3 C.4.11."""

    STAT = "STAT", "Stat"
    HIGH = "HIGH", "High"
    ROUTINE = "ROUTINE", "Routine"
    MEDIUM = "MEDIUM", "Medium"
    LOW = "LOW", "Low"
