"""Archive configuration: the one ArchiveConfig row, seeded from settings."""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.db import transaction

from pacs.models import ArchiveConfig

_CACHE_SECONDS = 2.0
_lock = threading.Lock()
_cached: tuple[float, ArchiveConfig] | None = None


def _defaults() -> dict:
    return {
        "duplicate_policy": settings.PACS_DUPLICATE_POLICY,
        "update_attributes": settings.PACS_UPDATE_ATTRIBUTES,
        "min_free_mb": settings.PACS_MIN_FREE_MB,
        "compression": settings.PACS_COMPRESSION,
        "path_template": settings.PACS_PATH_TEMPLATE,
    }


def archive_config_get(*, fresh: bool = False) -> ArchiveConfig:
    """Return the archive configuration, creating it from ``PACS_*`` settings once.

    Cached for two seconds per process so ingest does not read it per instance;
    changes made in the admin or API apply within that time in every process.
    """
    global _cached
    now = time.monotonic()
    with _lock:
        if not fresh and _cached and now - _cached[0] < _CACHE_SECONDS:
            return _cached[1]
    config, _ = ArchiveConfig.objects.get_or_create(pk=1, defaults=_defaults())
    with _lock:
        _cached = (now, config)
    return config


def archive_config_update(**fields: object) -> ArchiveConfig:
    """Validate and save archive configuration fields (keyword names = model fields).

    Raises
    ------
    django.core.exceptions.ValidationError
        A field value is invalid (unknown choice, unsafe path template, ...).
    """
    global _cached
    with transaction.atomic():
        config = archive_config_get(fresh=True)
        for name, value in fields.items():
            if not hasattr(config, name) or name in ("id", "pk", "updated_at"):
                raise ValueError(f"Unknown archive setting {name!r}")
            setattr(config, name, value)
        config.full_clean()
        config.save()
    with _lock:
        _cached = None
    return config


def archive_config_cache_clear() -> None:
    """Forget the cached configuration (tests and settings changes)."""
    global _cached
    with _lock:
        _cached = None
