"""Placeholder service module: the listener answers C-ECHO only until its issue lands."""

from __future__ import annotations


def configure(ae, listener) -> list:
    """Add this service's presentation contexts to *ae*; return its event handlers."""
    return []
