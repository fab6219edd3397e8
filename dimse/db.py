"""Database hygiene for association threads.

Each association runs in its own thread with its own Django connection.  The
connection is reused for every message of the association (opening one per
C-STORE would cost a PostgreSQL handshake each time) and closed when the
association ends; after a database error it is dropped so the next message
reconnects.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from django.db import connections
from django.db.utils import InterfaceError, OperationalError

F = TypeVar("F", bound=Callable)


def uses_db(func: F) -> F:
    """Decorate a DIMSE handler that touches the ORM."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (OperationalError, InterfaceError):
            connections.close_all()
            raise

    return wrapper  # type: ignore[return-value]


def db_release() -> None:
    """Close this thread's connections (association released/aborted)."""
    connections.close_all()
