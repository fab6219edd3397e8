"""Helpers for the Query/Retrieve and SCU tests: archive seeding, a storage receiver, DCMTK runs."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.presentation import StoragePresentationContexts

from pacs.services.ingest import instance_ingest
from tests import dicom_factories as f

DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def free_port() -> int:
    """An ephemeral port for a DCMTK receiver that takes a port number (movescu +P)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed_study(*, count: int = 3, series: int = 1, transfer_syntax: str = f.EXPLICIT_LE, **kwargs) -> dict:
    """Ingest one study (``series`` x ``count`` instances); return its UIDs and SOP Instance UIDs."""
    study_uid = kwargs.pop("study_uid", None) or generate_uid()
    sop_uids, series_uids = [], []
    for s in range(series):
        series_uid = generate_uid()
        series_uids.append(series_uid)
        for i in range(count):
            ds = f.ct_dataset(study_uid=study_uid, series_uid=series_uid, instance_number=i + 1,
                              SeriesNumber=s + 1, **kwargs)
            result = instance_ingest(source=f.encode(ds, transfer_syntax))
            sop_uids.append(result.sop_instance_uid)
    return {"study": study_uid, "series": series_uids, "sops": sop_uids}


@dataclass
class Receiver:
    """A pynetdicom Storage SCP on an ephemeral port that keeps what it receives."""

    ae_title: str
    port: int = 0
    datasets: list[Dataset] = field(default_factory=list)
    transfer_syntaxes: list[str] = field(default_factory=list)
    server: object = None
    status: int = 0x0000
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle_store(self, event) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        with self.lock:
            self.datasets.append(ds)
            self.transfer_syntaxes.append(str(event.context.transfer_syntax))
        return self.status

    def sop_uids(self) -> list[str]:
        with self.lock:
            return sorted(str(ds.SOPInstanceUID) for ds in self.datasets)

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()


def receiver_start(ae_title: str = "RECEIVER", transfer_syntaxes: list[str] | None = None) -> Receiver:
    """Start a storage receiver accepting only *transfer_syntaxes* (default uncompressed LE)."""
    receiver = Receiver(ae_title=ae_title)
    ae = AE(ae_title=ae_title)
    ae.maximum_pdu_size = 0
    for cx in StoragePresentationContexts:
        ae.add_supported_context(cx.abstract_syntax, transfer_syntaxes or [f.EXPLICIT_LE, f.IMPLICIT_LE])
    ae.add_supported_context("1.2.840.10008.1.1")
    receiver.server = ae.start_server(("127.0.0.1", 0), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, receiver.handle_store)])
    receiver.port = receiver.server.server_address[1]
    return receiver


def node_add(ae_title: str, port: int, **fields):
    from dimse.models import RemoteNode

    return RemoteNode.objects.create(ae_title=ae_title, host="127.0.0.1", port=port, **fields)


def dcmtk(tool: str, *args: str, timeout: int = 120, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([tool, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=DCMTK_ENV, cwd=cwd)
