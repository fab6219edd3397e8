"""Pages that queue jobs (send, Q/R query and retrieve) need the same permission as POST /api/jobs/."""

from __future__ import annotations

import pytest
import requests
from django.contrib.auth.models import Permission

from dimse.models import RemoteNode
from pacs.models import Job

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-password-1"


def _session(base: str, username: str) -> requests.Session:
    session = requests.Session()
    session.get(base + "/accounts/login/", timeout=10)
    login = session.post(base + "/accounts/login/", timeout=10, data={
        "username": username, "password": PASSWORD, "csrfmiddlewaretoken": session.cookies["csrftoken"]})
    assert login.status_code == 200 and "/accounts/login/" not in login.url
    return session


def _post(session: requests.Session, url: str, data: dict) -> requests.Response:
    return session.post(url, data={**data, "csrfmiddlewaretoken": session.cookies["csrftoken"]}, timeout=10,
                        allow_redirects=False, headers={"Referer": url})


def test_send_query_and_retrieve_pages_need_the_add_job_permission(live_server, django_user_model):
    user = django_user_model.objects.create_user("tech", "", PASSWORD)
    node = RemoteNode.objects.create(ae_title="OTHERPACS", host="127.0.0.1", port=104, is_query_source=True)
    session = _session(live_server.url, "tech")
    posts = [
        ("/studies/send/", {"study": "1.2.3.4", "node": node.pk}),
        ("/qr/query/", {"node": node.pk, "patient_id": "P1"}),
        ("/qr/retrieve/", {"node": node.pk, "study": "1.2.3.4", "method": "move"}),
    ]
    for path, data in posts:
        assert _post(session, live_server.url + path, data).status_code == 403, path
    assert Job.objects.count() == 0
    user.user_permissions.add(Permission.objects.get(codename="add_job", content_type__app_label="pacs"))
    for path, data in posts:
        assert _post(session, live_server.url + path, data).status_code != 403, path
    assert sorted(Job.objects.values_list("kind", flat=True)) == ["query", "send"]


def test_the_send_controls_show_only_with_the_permission(live_server, django_user_model):
    user = django_user_model.objects.create_user("tech", "", PASSWORD)
    session = _session(live_server.url, "tech")
    page = session.get(live_server.url + "/", timeout=10)
    assert page.status_code == 200 and 'id="study-table"' in page.text and 'id="send-button"' not in page.text
    user.user_permissions.add(Permission.objects.get(codename="add_job", content_type__app_label="pacs"))
    assert 'id="send-button"' in session.get(live_server.url + "/", timeout=10).text
