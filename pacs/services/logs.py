"""Per-service log files: rotation and retention (multi-process safe).

Every process appends through ``WatchedFileHandler``; rotation renames the file
(``storage.log`` -> ``storage.log.1`` ...) and the handlers reopen on their next
write, so runscp, web workers and the job cluster can share one log folder.
"""

from __future__ import annotations

import datetime
import logging
from pathlib import Path

from django.conf import settings
from django.utils import timezone

logger = logging.getLogger(__name__)


def log_files() -> list[Path]:
    """Current log file of each service, in settings order."""
    return [Path(settings.PACS_LOG_DIR) / f"{service}.log" for service in settings.PACS_LOG_SERVICES]


def log_rotate(*, max_bytes: int | None = None, backups: int | None = None) -> list[str]:
    """Rotate each service log larger than *max_bytes*; keep *backups* old files.

    Returns the names of the rotated logs.
    """
    max_bytes = max_bytes if max_bytes is not None else settings.PACS_LOG_MAX_MB * 1024 * 1024
    backups = backups if backups is not None else settings.PACS_LOG_BACKUPS
    rotated = []
    for path in log_files():
        try:
            if not path.exists() or path.stat().st_size <= max_bytes:
                continue
            for index in range(backups - 1, 0, -1):
                older = path.with_name(f"{path.name}.{index}")
                if older.exists():
                    older.replace(path.with_name(f"{path.name}.{index + 1}"))
            path.replace(path.with_name(f"{path.name}.1"))
            oldest = path.with_name(f"{path.name}.{backups + 1}")
            oldest.unlink(missing_ok=True)
            rotated.append(path.name)
        except OSError as exc:
            logger.warning("log rotate failed file=%s error=%s", path.name, exc)
    return rotated


def log_rotated_delete(*, path: Path) -> bool:
    """Delete one rotated log file (``<service>.log.N``); False when it does not exist."""
    if path.suffix == ".log" or not path.name.rsplit(".", 1)[-1].isdigit():
        raise ValueError(f"{path.name} is not a rotated log file")
    if not path.exists():
        return False
    path.unlink()
    logger.info("log rotated file deleted file=%s", path.name)
    return True


def log_rotated_files(*, path: Path) -> list[Path]:
    """The rotated files of one service log (``storage.log.1`` ...), oldest rotation last."""
    prefix = path.name + "."
    found = [item for item in path.parent.glob(path.name + ".*") if item.name[len(prefix):].isdigit()]
    return sorted(found, key=lambda item: int(item.name[len(prefix):]))


def log_archives_delete(*, older_than_days: int = 0) -> list[str]:
    """Delete the rotated log files last written more than *older_than_days* ago (the Logs page).

    Only rotated files (``<service>.log.N``) of the services in
    ``PACS_LOG_SERVICES`` are removed, never the file a process is writing.

    Returns
    -------
    list[str]
        The names of the deleted files.
    """
    cutoff = (timezone.now() - datetime.timedelta(days=max(0, older_than_days))).timestamp()
    removed = []
    for current in log_files():
        for path in log_rotated_files(path=current):
            try:
                if path.stat().st_mtime <= cutoff:
                    path.unlink(missing_ok=True)
                    removed.append(path.name)
            except OSError as exc:
                logger.warning("log archive delete failed file=%s error=%s", path.name, exc)
    logger.info("log archives deleted count=%d older_than_days=%d", len(removed), older_than_days)
    return removed
