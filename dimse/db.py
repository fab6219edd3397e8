"""Database hygiene for association threads.

Each association runs in its own thread with its own Django connection.  The
connection is reused for every message of the association (opening one per
C-STORE would cost a PostgreSQL handshake each time) and closed when the
association ends; after a database error it is dropped so the next message
reconnects.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TypeVar

from django.db import connections
from django.db.utils import InterfaceError, OperationalError

F = TypeVar("F", bound=Callable)


def uses_db(func: F) -> F:
    """Decorate a DIMSE handler that touches the ORM.

    Generator handlers (C-FIND/C-GET/C-MOVE) query while pynetdicom iterates
    them, so for those the guard wraps the iteration, not just the call that
    creates the generator.
    """
    if inspect.isgeneratorfunction(func):

        @functools.wraps(func)
        def generator_wrapper(*args, **kwargs):
            try:
                yield from func(*args, **kwargs)
            except (OperationalError, InterfaceError):
                connections.close_all()
                raise

        return generator_wrapper  # type: ignore[return-value]

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
