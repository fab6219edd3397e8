"""django-q2 tasks of the worklist app: one-line wrappers around services."""

from __future__ import annotations

from worklist.services.housekeeping import worklist_items_purge


def worklist_items_purge_task() -> int:
    return worklist_items_purge()
