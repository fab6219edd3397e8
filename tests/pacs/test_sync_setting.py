"""PACS_SYNC: what a commit flushes, checked on a real process's database connection."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRAGMA = "from django.db import connection; c = connection.cursor(); c.execute('PRAGMA synchronous'); print(c.fetchone()[0])"


def _shell(tmp_path, **env) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PACS_DATA_DIR": str(tmp_path), "DATABASE_URL": "", **env}
    return subprocess.run([sys.executable, "manage.py", "shell", "-c", PRAGMA], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("value", "level"), [(None, "2"), ("full", "2"), ("file", "1")])
def test_sqlite_commit_flush_follows_pacs_sync(tmp_path, value, level):
    result = _shell(tmp_path, **({"PACS_SYNC": value} if value else {}))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == level  # 2 = FULL, 1 = NORMAL


def test_unknown_pacs_sync_stops_start_up_with_the_choices(tmp_path):
    result = _shell(tmp_path, PACS_SYNC="sometimes")
    assert result.returncode != 0
    assert "PACS_SYNC='sometimes' is not valid; use one of file, full." in result.stderr
