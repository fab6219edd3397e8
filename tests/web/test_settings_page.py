"""Settings page in a real browser: allow lists against a live runscp, CORS, viewer link, public URL, errors."""

from __future__ import annotations

import re

import pytest
import requests
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from tests.polling import eventually

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh_config():
    """The runtime configuration is cached per process: no test sees another's."""
    from pacs.services.config import archive_config_cache_clear

    archive_config_cache_clear()
    yield
    archive_config_cache_clear()


def _save(page) -> str:
    """Click save, wait for the redirect back to the page, return the flashed message."""
    page.click("#settings-apply")
    page.wait_for_url(re.compile(r"/settings/$"))
    return page.locator(".messages").inner_text()


def _echo(port: int, calling: str) -> bool:
    """C-ECHO the storage listener as *calling*: True if accepted, False if the association was rejected."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="STORESCP")
    if assoc.is_rejected:
        return False
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()
    return True


def _restarted_storage_port(page) -> int:
    row = page.locator("#restart-result tr[data-service=storage]")
    assert "up" in row.inner_text()
    return int(row.get_attribute("data-port"))


def test_allow_list_edited_on_the_page_is_enforced_by_the_live_listener(logged_in, runscp, screenshot):
    from dimse.models import AllowedCaller, Listener
    from dimse.selectors import scp_process_list

    eventually(scp_process_list, timeout=15)  # runscp's first heartbeat: it will answer the restart
    page = logged_in
    page.goto("/settings/")
    storage = page.locator("#callers-storage")
    page.fill("#id_callers-storage-0-ae_title", "GOODSCU")
    page.fill("#id_callers-storage-0-host", "127.0.0.1")
    page.fill("#id_callers-storage-0-description", "CT room 1")
    storage.locator(".caller-add").click()  # a second row, added by settings.js
    page.fill("#id_callers-storage-1-ae_title", "FARSCU")
    page.fill("#id_callers-storage-1-host", "10.99.99.99")
    page.check("#id_storage-restrict_callers")
    message = _save(page)
    assert "restarted" in message
    screenshot(page, "settings-allow-list")
    assert Listener.objects.get(service="storage").restrict_callers
    assert set(AllowedCaller.objects.filter(listener__service="storage").values_list("ae_title", "host")) == {
        ("GOODSCU", "127.0.0.1"), ("FARSCU", "10.99.99.99")}
    assert storage.locator("tr.caller[data-ae=GOODSCU]").is_visible()

    port = _restarted_storage_port(page)
    assert _echo(port, "GOODSCU")
    assert not _echo(port, "EVILSCU")  # not listed
    assert not _echo(port, "FARSCU")  # listed, but only from 10.99.99.99

    # Removing GOODSCU on the page takes it off the live listener's list.
    storage.locator("tr.caller[data-ae=GOODSCU] input[name=remove_caller]").check()
    assert "restarted" in _save(page)
    port = _restarted_storage_port(page)
    assert not _echo(port, "GOODSCU")
    assert list(AllowedCaller.objects.values_list("ae_title", flat=True)) == ["FARSCU"]

    # The check off again: any calling AE title is accepted.
    page.uncheck("#id_storage-restrict_callers")
    assert "restarted" in _save(page)
    assert _echo(_restarted_storage_port(page), "EVILSCU")


def test_without_runscp_saving_listener_settings_says_so(logged_in):
    from dimse.models import AllowedCaller

    logged_in.goto("/settings/")
    logged_in.fill("#id_callers-all-0-ae_title", "ANYSCU")
    message = _save(logged_in)
    assert "runscp is not running" in message
    assert AllowedCaller.objects.get().listener is None  # "every listener" entry, saved
    assert logged_in.locator("#restart-result").count() == 0


def test_cors_origins_edited_on_the_page_apply_to_the_next_request(logged_in, live_server):
    def preflight(origin: str) -> requests.Response:
        return requests.options(live_server.url + "/dicomweb/studies", headers={
            "Origin": origin, "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization"}, timeout=10)

    assert "Access-Control-Allow-Origin" not in preflight("http://viewer.example:3000").headers
    logged_in.goto("/settings/")
    logged_in.fill("#id_web-cors_allowed_origins", "http://viewer.example:3000\nHTTPS://OHIF.example:443/")
    assert _save(logged_in) == "Settings saved."  # no listener change: no restart
    # Stored as browsers send the Origin header (lower case, default port dropped).
    assert logged_in.input_value("#id_web-cors_allowed_origins") == "http://viewer.example:3000\nhttps://ohif.example"

    allowed = preflight("http://viewer.example:3000")
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://viewer.example:3000"
    assert "authorization" in allowed.headers["Access-Control-Allow-Headers"].lower()
    assert preflight("https://ohif.example").headers["Access-Control-Allow-Origin"] == "https://ohif.example"
    for other in ("http://evil.example", "http://viewer.example:3001", "https://viewer.example:3000"):
        assert "Access-Control-Allow-Origin" not in preflight(other).headers, other
    denied = requests.get(live_server.url + "/dicomweb/studies", headers={"Origin": "http://viewer.example:3000"},
                          timeout=10)
    assert denied.status_code == 401  # CORS lets the browser read the answer, not the data
    assert denied.headers["Access-Control-Allow-Origin"] == "http://viewer.example:3000"

    logged_in.fill("#id_web-cors_allowed_origins", "")
    _save(logged_in)
    assert "Access-Control-Allow-Origin" not in preflight("http://viewer.example:3000").headers


def test_viewer_template_and_public_url_change_the_study_list_link_and_dicomweb_urls(logged_in, archive,
                                                                                     live_server):
    uids = archive(count=1, AccessionNumber="ACC-V1")
    page = logged_in
    page.goto("/")
    assert page.locator("a[href*='/external/']").count() == 0  # no template: no link

    page.goto("/settings/")
    page.fill("#id_web-external_viewer_url", "radiant://?n=pstv&v=0020000D&v={StudyInstanceUID}")
    _save(page)
    page.goto("/")
    link = page.locator("a[href*='/external/']")
    assert link.count() == 1
    opened = page.request.get(link.get_attribute("href"), max_redirects=0)
    assert opened.status == 302
    assert opened.headers["location"] == f"radiant://?n=pstv&v=0020000D&v={uids['study']}"

    page.goto("/settings/")
    page.fill("#id_web-external_viewer_url", "{base}/ohif/viewer?StudyInstanceUIDs={StudyInstanceUID}&a={AccessionNumber}")
    page.fill("#id_web-public_url", "https://pacs.example.org/")
    _save(page)
    assert page.input_value("#id_web-public_url") == "https://pacs.example.org"
    page.goto("/")
    opened = page.request.get(page.locator("a[href*='/external/']").get_attribute("href"), max_redirects=0)
    assert opened.headers["location"] == (
        f"https://pacs.example.org/ohif/viewer?StudyInstanceUIDs={uids['study']}&a=ACC-V1")

    # QIDO-RS RetrieveURL uses the public URL set on the page.
    found = requests.get(live_server.url + "/dicomweb/studies", auth=("admin", "admin"), timeout=10).json()
    assert found[0]["00081190"]["Value"] == [f"https://pacs.example.org/dicomweb/studies/{uids['study']}"]


def test_invalid_input_shows_field_errors_and_saves_nothing(logged_in, screenshot):
    from dimse.models import AllowedCaller, Listener
    from pacs.services.config import archive_config_get

    page = logged_in
    page.goto("/settings/")
    page.fill("#id_callers-storage-0-ae_title", "BAD\\AE")
    page.fill("#id_callers-qr-0-ae_title", "QRSCU")
    page.fill("#id_callers-qr-0-host", "not a host!")
    page.fill("#id_callers-all-0-ae_title", "    ")  # only spaces, with a host: not a blank row
    page.fill("#id_callers-all-0-host", "127.0.0.1")
    page.check("#id_print-restrict_callers")  # the check on with an empty list would reject everyone
    page.fill("#id_web-cors_allowed_origins", "http://ok.example:8080\nftp://files.example\nhttp://a.example/path")
    page.fill("#id_web-external_viewer_url", "javascript:alert({StudyInstanceUID})")
    page.fill("#id_web-public_url", "pacs.example.org")
    page.click("#settings-apply")
    page.wait_for_load_state()
    screenshot(page, "settings-errors")

    def errors(selector: str) -> str:
        return page.locator(selector).locator(".errorlist").inner_text()

    assert "AE title" in errors("#callers-storage")
    assert "not an IP address or host name" in errors("#callers-qr")
    assert errors("#callers-all")
    assert "every association would be rejected" in errors("#callers-print")
    cors = errors("#web-settings .form-grid > div:has(#id_web-cors_allowed_origins)")
    assert "ftp://files.example" in cors and "http://a.example/path" in cors and "ok.example" not in cors
    assert "viewer scheme" in errors("#web-settings .form-grid > div:has(#id_web-external_viewer_url)")
    assert "base URL" in errors("#web-settings .form-grid > div:has(#id_web-public_url)")
    # What was typed stays on the page; nothing was written.
    assert page.input_value("#id_callers-qr-0-host") == "not a host!"
    assert AllowedCaller.objects.count() == 0
    assert not Listener.objects.get(service="print").restrict_callers
    config = archive_config_get(fresh=True)
    assert config.cors_allowed_origins == [] and config.external_viewer_url == "" and config.public_url == ""

    # A listed AE title cannot be added twice to the same list.
    page.goto("/settings/")
    page.fill("#id_callers-storage-0-ae_title", "TWICE")
    _save(page)
    page.fill("#id_callers-storage-0-ae_title", "TWICE")
    page.click("#settings-apply")
    page.wait_for_load_state()
    assert "Already in this allow list" in errors("#callers-storage")
    assert AllowedCaller.objects.filter(ae_title="TWICE").count() == 1


def test_settings_changes_need_permissions(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw-pw-pw-1")
    client.force_login(user)
    assert client.get("/settings/").status_code == 200
    response = client.post("/settings/", {"web-public_url": "https://x.example"})
    assert response.status_code == 403


def test_settings_page_speaks_chinese(client, admin_user):
    client.force_login(admin_user)
    body = client.get("/settings/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "调用方 AE 白名单" in body and "网页与查看器" in body and "所有监听器" in body
