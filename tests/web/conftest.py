"""Playwright against Debian's chromium and pytest-django's live_server.

Never downloads a browser: launches /usr/bin/chromium.  Playwright's sync API
runs an event loop in the test thread, which trips Django's async-unsafe guard
for the ORM calls tests make; the guard is lifted for these tests only.
Screenshots go to ``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session", autouse=True)
def compiled_messages():
    """Compile locale/*.po to .mo once (the .mo files are build output, not in git)."""
    from django.conf import settings
    from django.core.management import call_command

    if any(any(Path(p).glob("*/LC_MESSAGES/*.po")) for p in settings.LOCALE_PATHS):
        call_command("compilemessages", verbosity=0,
                     ignore_patterns=[".venv", "data", "ohif", "node_modules", "test-artifacts", ".git"])


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, request):
    """A fresh 1280x800 browser context; JS errors and CSP violations fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US",
                                  base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}")
            if msg.type == "error" and "Content Security Policy" in msg.text else None)
    page.js_errors = errors
    yield page
    context.close()
    assert not errors, errors


@pytest.fixture
def admin_user(transactional_db):
    from django.contrib.auth import get_user_model

    from pacs.services.users import admin_ensure

    admin_ensure()
    return get_user_model().objects.get(username="admin")


@pytest.fixture
def logged_in(page, admin_user):
    """The page, logged in as admin/admin (the first-run account)."""
    page.goto("/accounts/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin")
    page.click("#login-form button[type=submit]")
    page.wait_for_url(re.compile(r"/$"))
    return page


@pytest.fixture
def screenshot():
    """``screenshot(page, "name")`` saves test-artifacts/name.png (full page)."""
    ARTIFACTS.mkdir(exist_ok=True)

    def _shot(page, name: str, full_page: bool = True) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return _shot


@pytest.fixture
def archive(storage_root, archive_config):
    """``archive(count=3, **ct_dataset kwargs)`` ingests one generated study; returns its UIDs."""
    from pydicom.uid import generate_uid

    from pacs.services.ingest import IngestOrigin, instance_ingest
    from tests.dicom_factories import ct_dataset, encode

    def _study(count: int = 3, series: int = 1, origin_aet: str = "MODALITY1", **kwargs) -> dict:
        study_uid = kwargs.pop("study_uid", None) or generate_uid()
        series_uids = [generate_uid() for _ in range(series)]
        sops = []
        for s_index, series_uid in enumerate(series_uids):
            for i in range(count):
                ds = ct_dataset(study_uid=study_uid, series_uid=series_uid, instance_number=i + 1,
                                SeriesNumber=s_index + 1, **kwargs)
                result = instance_ingest(source=encode(ds),
                                         origin=IngestOrigin(source="c-store", calling_aet=origin_aet))
                sops.append(result.sop_instance_uid)
        return {"study": study_uid, "series": series_uids, "instances": sops}

    return _study


def _database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def runscp(storage_root, tmp_path):
    """A real ``manage.py runscp`` on ephemeral ports against the test database; stopped at teardown."""
    import subprocess
    import sys
    import threading

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DATABASE_URL": _database_url(), "PACS_STORAGE_ROOT": str(storage_root),
           "PACS_MIN_FREE_MB": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "manage.py", "runscp", "--bind", "127.0.0.1", "--port", "0"],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    for line in proc.stdout:
        output.append(line)
        if "runscp ready" in line or "Error" in line:
            break
    assert "runscp ready" in "".join(output), "".join(output)
    threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True).start()
    yield proc
    proc.terminate()
    proc.wait(timeout=30)
