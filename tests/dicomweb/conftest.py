"""Fixtures of the DICOMweb tests: a user, an authenticated requests session, stored studies."""

from __future__ import annotations

import pytest
import requests

from pacs.services.ingest import IngestOrigin, instance_ingest
from tests import dicom_factories as f

PASSWORD = "secret-pw-123"


@pytest.fixture
def api_user(transactional_db, django_user_model):
    return django_user_model.objects.create_superuser("dwadmin", "", PASSWORD)


@pytest.fixture
def http(live_server, api_user, archive_config):
    """A requests session logged in with HTTP Basic, and ``http.url(path)``."""
    from rest_framework.authtoken.models import Token

    session = requests.Session()
    # Token auth: HTTP Basic would run the slow password hash on every request.
    session.headers["Authorization"] = f"Token {Token.objects.get_or_create(user=api_user)[0].key}"
    session.username = api_user.username
    session.base = live_server.url
    session.url = lambda path: live_server.url + path
    yield session
    session.close()


@pytest.fixture
def dw_client(http):
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(url=http.url("/dicomweb"), session=http)
    return client


def multipart_parts(response) -> list[tuple[dict, bytes]]:
    """Split a multipart/related response by its boundary (independent of the server's writer)."""
    content_type = response.headers["Content-Type"]
    boundary = [p.split("=", 1)[1].strip('"') for p in content_type.split(";") if p.strip().startswith("boundary=")][0]
    body = response.content
    parts = []
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode().strip().split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts.append((headers, data[:-2] if data.endswith(b"\r\n") else data))
    return parts


def ingest(ds, transfer_syntax: str = f.EXPLICIT_LE):
    return instance_ingest(source=f.encode(ds, transfer_syntax), origin=IngestOrigin(source="import"))


@pytest.fixture
def stored_study(archive_config):
    """One study of 3 CT instances (one series) in the archive; returns the datasets."""
    from pydicom.uid import generate_uid

    study_uid, series_uid = generate_uid(), generate_uid()
    datasets = [
        f.ct_dataset(study_uid=study_uid, series_uid=series_uid, instance_number=i + 1) for i in range(3)
    ]
    for ds in datasets:
        ingest(ds)
    return datasets
