"""Files of the print server under ``PACS_DATA_DIR/print/``: received image boxes and film previews.

Each print job has its own folder ``job-<id>/`` (``images/`` for the received
preformatted images, ``films/`` for PNG previews), removed with the job.
Paths stored on rows are relative to the print root and resolved only through
:func:`absolute_path`, which refuses anything outside it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from django.conf import settings


def print_root() -> Path:
    return Path(settings.PACS_DATA_DIR) / "print"


def job_folder_relative(job_id: int) -> str:
    return f"job-{int(job_id)}"


def absolute_path(relative: str) -> Path:
    """Absolute path of a print-relative path, guaranteed inside the print root."""
    root = print_root().resolve()
    path = (root / relative).resolve()
    if root not in path.parents:
        raise ValueError(f"Path {relative!r} escapes the print folder")
    return path


def file_write(relative: str, data: bytes) -> Path:
    """Write *data* atomically (temp file, fsync, rename) to *relative*."""
    final = absolute_path(relative)
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.part")
    try:
        with open(temp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, final)
    finally:
        temp.unlink(missing_ok=True)
    return final


def job_folder_remove(job_id: int) -> None:
    shutil.rmtree(absolute_path(job_folder_relative(job_id)), ignore_errors=True)
