"""The records ingest passes around: where an instance came from, what became of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from pacs.choices import IngestStatus


@dataclass(frozen=True)
class IngestOrigin:
    """Where an instance came from; recorded on the series and in logs."""

    source: str = "import"  # c-store | stow-rs | import | upload | print | retrieve | compress
    calling_aet: str = ""
    called_aet: str = ""
    peer_address: str = ""
    # Specific Character Set forced for this sender (RemoteNode.charset_override).
    charset_override: str = ""


@dataclass(frozen=True)
class SpooledFile:
    """A Part 10 file already written and fsynced to a temp path on the archive volume.

    Ingest renames it into place instead of copying it (a received data set
    too large to hold in memory); *checksum* is its SHA-256, computed while it was
    written.  The file stays the caller's until ingest has moved it: whoever
    hands one over removes the path afterwards if it still exists.
    """

    path: Path
    checksum: str


@dataclass(frozen=True)
class IngestResult:
    status: str  # IngestStatus value
    instance_id: int
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    file_size: int

    @property
    def stored(self) -> bool:
        return self.status in (IngestStatus.STORED, IngestStatus.REPLACED)


@dataclass
class Header:
    ds: Dataset
    transfer_syntax_uid: str
    data: bytes | None  # the bytes to archive, when held in memory
    path: Path | None  # or the file to copy
    size: int
