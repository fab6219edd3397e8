"""Remote nodes: the ``nodes`` command and the admin "verify" action, against a live listener."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from dimse.models import RemoteNode
from tests.dimse.qr_support import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def _run(*args):
    from io import StringIO

    out = StringIO()
    call_command("nodes", *args, stdout=out)
    return out.getvalue()


def test_add_list_update_remove():
    out = _run("add", "--ae", "ORTHANC", "--host", "10.0.0.5", "--port", "4242", "--roles", "move,store,query")
    assert "Added ORTHANC@10.0.0.5:4242" in out
    node = RemoteNode.objects.get(ae_title="ORTHANC")
    assert (node.is_move_destination, node.is_store_destination, node.is_query_source, node.is_printer) == (
        True, True, True, False)
    _run("add", "--ae", "ORTHANC", "--host", "10.0.0.6", "--port", "104", "--roles", "print",
         "--calling-aet", "MYPACS", "--charset", "GB18030")
    node.refresh_from_db()
    assert (node.host, node.port, node.is_printer, node.is_store_destination, node.calling_aet,
            node.charset_override) == ("10.0.0.6", 104, True, False, "MYPACS", "GB18030")
    listing = _run("list")
    assert "ORTHANC" in listing and "roles=print" in listing
    assert "Removed ORTHANC" in _run("remove", "--ae", "ORTHANC")
    assert not RemoteNode.objects.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["add", "--ae", "X", "--host", "h", "--port", "1", "--roles", "store,fly"], "Unknown role"),
        (["add", "--ae", "A" * 17, "--host", "h", "--port", "1"], "ae_title"),
        (["add", "--ae", "X", "--host", "h", "--port", "70000"], "port"),
        (["remove", "--ae", "NOPE"], "No node"),
        (["verify", "--ae", "NOPE"], "No node"),
    ],
)
def test_bad_input_is_a_clear_error(args, message):
    with pytest.raises(CommandError, match=message):
        _run(*args)
    assert not RemoteNode.objects.exists()


def test_verify_against_a_live_listener_and_a_closed_port(dimse_listener):
    port = dimse_listener("qr").port("qr")
    _run("add", "--ae", "QRSCP", "--host", "127.0.0.1", "--port", str(port), "--roles", "query")
    assert "C-ECHO success" in _run("verify", "--ae", "QRSCP")
    _run("add", "--ae", "DOWN", "--host", "127.0.0.1", "--port", str(free_port()))
    with pytest.raises(CommandError, match="failed"):
        _run("verify", "--ae", "DOWN")


def test_admin_verify_action_shows_the_result(dimse_listener, admin_client):
    port = dimse_listener("qr").port("qr")
    up = RemoteNode.objects.create(ae_title="QRSCP", host="127.0.0.1", port=port)
    down = RemoteNode.objects.create(ae_title="DOWN", host="127.0.0.1", port=free_port())
    url = reverse("admin:dimse_remotenode_changelist")
    response = admin_client.post(url, {"action": "verify", "_selected_action": [up.pk, down.pk]}, follow=True)
    assert response.status_code == 200
    texts = [str(m) for m in response.context["messages"]]
    assert any("QRSCP@127.0.0.1" in t and "C-ECHO success" in t for t in texts)
    assert any("DOWN@127.0.0.1" in t and "failed" in t for t in texts)
