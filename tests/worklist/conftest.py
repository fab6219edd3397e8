"""Fixtures of the worklist tests: items created through the service, the live worklist listener, findscu."""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread

FINDSCU_TIMEOUT = 30


def item_fields(**overrides) -> dict:
    fields = {
        "patient_name": "WANG^XIAOMING=王^小明",
        "patient_id": "P001",
        "patient_birth_date": datetime.date(1980, 1, 2),
        "patient_sex": "M",
        "accession_number": "A001",
        "requested_procedure_id": "RP001",
        "requested_procedure_description": "CT chest",
    }
    fields.update(overrides)
    return fields


def step_fields(**overrides) -> dict:
    fields = {
        "scheduled_procedure_step_id": "SPS001",
        "scheduled_procedure_step_description": "Chest plain",
        "modality": "CT",
        "scheduled_station_ae_title": "CT01",
        "scheduled_station_name": "CTROOM1",
        "scheduled_procedure_step_start_date": datetime.date.today(),
        "scheduled_procedure_step_start_time": datetime.time(9, 0),
        "scheduled_performing_physician_name": "LI^NA",
    }
    fields.update(overrides)
    return fields


@pytest.fixture
def make_item():
    """``make_item(item_overrides..., steps=[step_fields(...)])`` through ``worklist_item_create``."""
    from worklist.services.items import worklist_item_create

    def _make(steps: list[dict] | None = None, **overrides):
        return worklist_item_create(fields=item_fields(**overrides), steps=steps or [step_fields()])

    return _make


@pytest.fixture
def mwl_port(dimse_listener) -> int:
    """Port of a live worklist listener (AE WORKLISTSCP) started with the runscp code."""
    manager = dimse_listener("worklist")
    return manager.port("worklist")


@pytest.fixture
def findscu(tmp_path, mwl_port):
    """Run DCMTK ``findscu -W`` with ``-k`` keys; return (completed process, response datasets)."""

    def _run(*keys: str, calling_aet: str = "CT01", extra: tuple[str, ...] = ()):
        out = Path(tmp_path) / f"rsp-{len(list(Path(tmp_path).glob('rsp-*')))}"
        out.mkdir()
        args = ["findscu", "-W", "-v", "-aet", calling_aet, "-aec", "WORKLISTSCP", "-X", "-od", str(out), *extra]
        for key in keys:
            args += ["-k", key]
        args += ["127.0.0.1", str(mwl_port)]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=FINDSCU_TIMEOUT,
                              env={"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"})
        files = sorted(out.glob("rsp*.dcm"))
        return proc, [(dcmread(f, force=True), f.read_bytes()) for f in files]

    return _run
