"""Deleting rotated log files (the Logs page's "delete old files").

Belongs with :mod:`pacs.services.logs` (rotation); kept here until that module
offers it.  Only rotated files (``<service>.log.N``) of known services are
removed, never the file a process is writing.
"""

from __future__ import annotations

import datetime
import logging

from django.utils import timezone

from pacs.views.reads import log_archives, log_path, log_services

logger = logging.getLogger("pacs.views")


def log_archives_delete(*, older_than_days: int = 0) -> list[str]:
    """Remove rotated log files last written more than *older_than_days* ago; return their names."""
    cutoff = timezone.now() - datetime.timedelta(days=older_than_days)
    removed = []
    for service in log_services():
        folder = log_path(service).parent
        for item in log_archives(service):
            if item["modified"] <= cutoff:
                (folder / item["name"]).unlink(missing_ok=True)
                removed.append(item["name"])
    logger.info("log archives deleted count=%d older_than_days=%d", len(removed), older_than_days)
    return removed
