"""Per-service log files: rotation and retention (multi-process safe).

Every process appends through ``WatchedFileHandler``; rotation renames the file
(``storage.log`` -> ``storage.log.1`` ...) and the handlers reopen on their next
write, so runscp, web workers and the job cluster can share one log folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings

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
