"""OHIF (installed by ``manage.py installohif``) served under /ohif/, reading our DICOMweb with the session."""

from __future__ import annotations

import pytest
import requests

from tests.polling import eventually

pytestmark = pytest.mark.django_db(transaction=True)

NONBLACK_CANVAS = """() => {
  let best = 0;
  for (const canvas of document.querySelectorAll('canvas')) {
    if (!canvas.width || !canvas.height) continue;
    const probe = document.createElement('canvas');
    probe.width = canvas.width; probe.height = canvas.height;
    const ctx = probe.getContext('2d');
    try { ctx.drawImage(canvas, 0, 0); } catch (e) { continue; }
    const data = ctx.getImageData(0, 0, probe.width, probe.height).data;
    let n = 0;
    for (let i = 0; i < data.length; i += 4) if (data[i] > 20 || data[i + 1] > 20 || data[i + 2] > 20) n++;
    best = Math.max(best, n);
  }
  return best;
}"""


@pytest.fixture(scope="session")
def ohif_installed():
    """Install OHIF once (npm pack of the pinned @ohif/app; a no-op when already installed)."""
    from django.conf import settings
    from django.core.management import call_command

    call_command("installohif", verbosity=0)
    assert (settings.PACS_OHIF_DIR / "index.html").is_file()


def test_ohif_needs_login_and_is_rewritten_for_its_prefix(live_server, admin_user, ohif_installed):
    anonymous = requests.get(live_server.url + "/ohif/viewer", timeout=10, allow_redirects=False)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous.headers["Location"]
    session = requests.Session()
    session.get(live_server.url + "/accounts/login/", timeout=10)
    session.post(live_server.url + "/accounts/login/", timeout=10,
                 data={"username": "admin", "password": "admin",
                       "csrfmiddlewaretoken": session.cookies["csrftoken"]})
    index = session.get(live_server.url + "/ohif/viewer?StudyInstanceUIDs=1.2.3", timeout=10)
    assert index.status_code == 200
    assert 'window.PUBLIC_URL="/ohif/"' in index.text and 'src="/ohif/app-config.js"' in index.text
    assert "'wasm-unsafe-eval'" in index.headers["Content-Security-Policy"]
    config = session.get(live_server.url + "/ohif/app-config.js", timeout=10)
    assert "/dicomweb" in config.text and "cloudfront" not in config.text
    assert session.get(live_server.url + "/ohif/missing.js", timeout=10).status_code == 404


def test_ohif_path_traversal_is_refused(client, admin_user, ohif_installed):
    client.force_login(admin_user)
    for path in ("/ohif/assets/..%2f..%2f..%2fpacs%2fsettings.py", "/ohif/..%2f..%2fmanage.py",
                 "/ohif/%2e%2e/%2e%2e/manage.py"):
        response = client.get(path)
        assert response.status_code == 404 or b"DJANGO_SETTINGS_MODULE" not in b"".join(response), path


def test_ohif_loads_a_study_and_draws_it(logged_in, archive, ohif_installed, screenshot):
    logged_in.js_errors.clear()
    uids = archive(count=4, size=64, patient_name="OHIF^PATIENT")
    logged_in.goto(f"/ohif/viewer?StudyInstanceUIDs={uids['study']}")
    eventually(lambda: logged_in.evaluate(NONBLACK_CANVAS) > 200, timeout=60, interval=0.5)
    screenshot(logged_in, "ohif-viewer", full_page=False)
    # OHIF's own errors are not ours to fail on; only keep CSP violations.
    logged_in.js_errors[:] = [e for e in logged_in.js_errors if "Content Security Policy" in e]
