"""Reads of the printing app: print jobs with their films (one query each level, no N+1)."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from printing.models import Film, PrintJob


def print_job_list() -> QuerySet[PrintJob]:
    """Print jobs newest first, films prefetched in film order."""
    films = Film.objects.order_by("film_number").only(
        "id",
        "print_job_id",
        "film_number",
        "image_display_format",
        "film_size_id",
        "film_orientation",
        "rows",
        "columns",
        "number_of_images",
        "sop_instance_uid",
        "instance_id",
        "created_at",
    )
    return PrintJob.objects.prefetch_related(Prefetch("films", queryset=films)).order_by("-created_at", "-id")


def film_get(*, print_job_id: int, film_number: int) -> Film | None:
    """One film of a print job, with its archived instance (for downloads)."""
    return Film.objects.select_related("instance").filter(print_job_id=print_job_id, film_number=film_number).first()
