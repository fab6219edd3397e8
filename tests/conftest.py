"""Shared fixtures: a temp archive root and live DIMSE listeners on ephemeral ports."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

os.environ.setdefault("TCP_NODELAY", "1")  # DCMTK clients: no 40 ms delayed-ACK waits


@pytest.fixture
def storage_root(tmp_path, settings):
    """Point the archive at a fresh temp folder for this test."""
    from pacs.services.config import archive_config_cache_clear

    root = tmp_path / "archive"
    root.mkdir()
    settings.PACS_STORAGE_ROOT = root
    archive_config_cache_clear()
    yield root
    archive_config_cache_clear()


@pytest.fixture
def archive_config(db, storage_root):
    """Set archive policies for a test: ``archive_config(duplicate_policy="reject")``."""
    from pacs.services.config import archive_config_update

    def _set(**fields):
        return archive_config_update(**fields)

    _set(min_free_mb=1)
    return _set


@pytest.fixture
def dimse_listener(transactional_db, storage_root) -> Iterator[Callable]:
    """Start listeners with the same code runscp uses, on 127.0.0.1 and ephemeral ports.

    ``manager = dimse_listener("storage")``; ``manager.port("storage")`` is its port.
    """
    from dimse.server import ListenerManager
    from pacs.services.config import archive_config_update

    archive_config_update(min_free_mb=1)
    managers = []

    def _start(*services: str, **listener_fields):
        from dimse.services import listener_config_update

        for service in services:
            if listener_fields:
                listener_config_update(service=service, **listener_fields)
        manager = ListenerManager(
            bind_address="127.0.0.1", port_overrides={s: 0 for s in services}, services=list(services)
        )
        status = manager.start()
        for service in services:
            assert status[service]["running"], status[service]["error"]
        managers.append(manager)
        return manager

    yield _start
    for manager in managers:
        manager.shutdown()
