"""The DIMSE control API against a real ``runscp`` process (the real control channel)."""

from __future__ import annotations

import socket

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from dimse.models import AllowedCaller, Listener
from dimse.selectors import scp_process_list
from pacs.services.config import archive_config_get
from tests.polling import eventually

pytestmark = pytest.mark.django_db(transaction=True)


def _echo(port: int, called: str = "STORESCP", calling: str = "PYSCU") -> bool:
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    ok = assoc.is_established
    if ok:
        status = assoc.send_c_echo()
        ok = bool(status) and status.Status == 0
        assoc.release()
    return ok


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_status_stop_start_restart_a_live_runscp(api, runscp_process):
    scp = runscp_process("--services", "storage")
    port = scp.ports["storage"]
    eventually(lambda: scp_process_list(), timeout=20)

    status = api.get(api.url("/api/dicom/status")).json()
    storage = next(item for item in status["listeners"] if item["service"] == "storage")
    assert storage["up"] is True and storage["port"] == port and storage["ae_title"] == "STORESCP"
    assert status["storage"]["disk_free_bytes"] > 0 and len(status["processes"]) == 1

    stopped = api.post(api.url("/api/dicom/stop"), json={"service": "storage"})
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["result"]["storage"]["running"] is False
    assert not _port_open(port)

    started = api.post(api.url("/api/dicom/start"), json={"service": "storage"})
    assert started.status_code == 200
    assert started.json()["result"]["storage"]["running"] is True
    # runscp --port 0 binds a fresh ephemeral port on every start: the answer names it.
    assert _echo(started.json()["result"]["storage"]["port"])

    restarted = api.post(api.url("/api/dicom/restart"), json={})
    assert restarted.status_code == 200 and restarted.json()["result"]["storage"]["running"] is True
    assert _echo(restarted.json()["result"]["storage"]["port"])


def test_settings_put_validates_and_apply_restarts_with_new_ae_title(api, runscp_process):
    runscp_process("--services", "storage")
    eventually(lambda: scp_process_list(), timeout=20)
    current = api.get(api.url("/api/dicom/settings")).json()
    assert {item["service"] for item in current["listeners"]} == {"storage", "worklist", "qr", "print"}

    bad = api.put(api.url("/api/dicom/settings"), json={"listeners": [{"service": "storage", "ae_title": "A\\B"}]})
    assert bad.status_code == 400
    bad_policy = api.put(api.url("/api/dicom/settings"), json={"archive": {"duplicate_policy": "sometimes"}})
    assert bad_policy.status_code == 400
    assert Listener.objects.get(service="storage").ae_title == "STORESCP"

    changed = api.put(api.url("/api/dicom/settings"), json={
        "listeners": [{"service": "storage", "ae_title": "NEWARCHIVE", "restrict_callers": True}],
        "allowed_callers": [{"listener": "storage", "ae_title": "GOODSCU", "host": "127.0.0.1"}],
        "archive": {"duplicate_policy": "reject"},
        "apply": True,
    })
    assert changed.status_code == 200, changed.text
    assert changed.json()["applied"] is True
    port = changed.json()["result"]["storage"]["port"]
    assert archive_config_get(fresh=True).duplicate_policy == "reject"
    assert AllowedCaller.objects.get().listener.service == "storage"
    assert _echo(port, called="NEWARCHIVE", calling="GOODSCU")
    assert not _echo(port, called="NEWARCHIVE", calling="OTHERSCU")


def test_control_needs_permission_and_a_running_runscp(api, viewer, live_server):
    import requests

    assert requests.get(live_server.url + "/api/dicom/status").status_code in (401, 403)
    assert viewer.get(viewer.url("/api/dicom/status")).status_code == 200
    assert viewer.post(viewer.url("/api/dicom/stop"), json={}).status_code == 403
    assert viewer.put(viewer.url("/api/dicom/settings"), json={}).status_code == 403
    none_running = api.post(api.url("/api/dicom/stop"), json={})
    assert none_running.status_code == 503
    assert "runscp" in none_running.json()["detail"]
    assert api.post(api.url("/api/dicom/stop"), json={"service": "nonsense"}).status_code == 400
