"""Choices of the printing app (PS3.3 C.13 defined terms)."""

from django.db import models


class PrintJobStatus(models.TextChoices):
    """Execution status of a print job (PS3.3 C.13.5 Execution Status: PENDING, PRINTING, DONE, FAILURE)."""

    PENDING = "PENDING", "Pending"
    PRINTING = "PRINTING", "Printing"
    DONE = "DONE", "Done"
    FAILURE = "FAILURE", "Failure"


class FilmOrientation(models.TextChoices):
    PORTRAIT = "PORTRAIT", "Portrait"
    LANDSCAPE = "LANDSCAPE", "Landscape"


class MagnificationType(models.TextChoices):
    REPLICATE = "REPLICATE", "Replicate"
    BILINEAR = "BILINEAR", "Bilinear"
    CUBIC = "CUBIC", "Cubic"
    NONE = "NONE", "None"


class Polarity(models.TextChoices):
    NORMAL = "NORMAL", "Normal"
    REVERSE = "REVERSE", "Reverse"


# Film Size ID defined terms (PS3.3 C.13.8) -> (width, height) in millimetres, portrait.
FILM_SIZES_MM: dict[str, tuple[float, float]] = {
    "8INX10IN": (203.2, 254.0),
    "8_5INX11IN": (215.9, 279.4),
    "10INX12IN": (254.0, 304.8),
    "10INX14IN": (254.0, 355.6),
    "11INX14IN": (279.4, 355.6),
    "11INX17IN": (279.4, 431.8),
    "14INX14IN": (355.6, 355.6),
    "14INX17IN": (355.6, 431.8),
    "24CMX24CM": (240.0, 240.0),
    "24CMX30CM": (240.0, 300.0),
    "A4": (210.0, 297.0),
    "A3": (297.0, 420.0),
}
