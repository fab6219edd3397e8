"""``python manage.py importdicom PATH...``: import files, folders (recursive) and zips.

Every file goes through ``instance_ingest``, exactly like C-STORE and STOW-RS.
Shows a progress bar and ends with a summary: stored / duplicate / rejected
(with reasons).  Files that are not DICOM (DICOMDIR, READMEs) are reported as
rejected and never stop the import.
"""

from __future__ import annotations

import zipfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from pacs.exceptions import PacsError
from pacs.services.ingest import IngestOrigin, instance_ingest


def _sources(paths: list[Path]) -> Iterator[tuple[str, Path | bytes]]:
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as archive:
                    for member in archive.infolist():
                        if not member.is_dir():
                            yield f"{path.name}:{member.filename}", archive.read(member)
            else:
                yield str(path), path


def _count(paths: list[Path]) -> int:
    total = 0
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in files:
            if zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as archive:
                    total += sum(1 for m in archive.infolist() if not m.is_dir())
            else:
                total += 1
    return total


class Command(BaseCommand):
    help = "Import DICOM files, folders (recursively) and zip archives into the archive."

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--no-progress", action="store_true", help="Do not show the progress bar.")

    def handle(self, *args, paths: list[Path], no_progress: bool, **options) -> None:
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise CommandError(f"No such file or folder: {', '.join(missing)}")
        origin = IngestOrigin(source="import")
        counts: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        examples: dict[str, str] = {}
        total = _count(paths)
        with tqdm(total=total, unit="file", disable=no_progress or None, dynamic_ncols=True) as bar:
            for name, source in _sources(paths):
                try:
                    result = instance_ingest(source=source, origin=origin)
                    counts["duplicate" if result.status == "duplicate" else "stored"] += 1
                except PacsError as exc:
                    counts["rejected"] += 1
                    reasons[exc.message] += 1
                    examples.setdefault(exc.message, name)
                bar.update(1)
        self.stdout.write(
            f"Imported {total} file(s): {counts['stored']} stored, {counts['duplicate']} duplicate, "
            f"{counts['rejected']} rejected."
        )
        for reason, count in reasons.most_common():
            self.stdout.write(f"  rejected {count}x: {reason} (e.g. {examples[reason]})")
