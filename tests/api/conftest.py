"""Fixtures of the REST API tests: users with and without permissions, a live runscp."""

from __future__ import annotations

import signal

import pytest
import requests

PASSWORD = "api-pw-12345"


@pytest.fixture
def admin_user(transactional_db, django_user_model):
    return django_user_model.objects.create_superuser("apiadmin", "", PASSWORD)


@pytest.fixture
def plain_user(transactional_db, django_user_model):
    return django_user_model.objects.create_user("viewer", "", PASSWORD)


def token_for(user) -> str:
    """An API token (Token auth skips the deliberately slow password hash on every request)."""
    from rest_framework.authtoken.models import Token

    return Token.objects.get_or_create(user=user)[0].key


@pytest.fixture
def api(live_server, admin_user, archive_config):
    """requests session authenticated as an administrator (token); ``api.url(path)``."""
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token_for(admin_user)}"
    session.url = lambda path: live_server.url + path
    yield session
    session.close()


@pytest.fixture
def viewer(live_server, plain_user, archive_config):
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token_for(plain_user)}"
    session.url = lambda path: live_server.url + path
    yield session
    session.close()


@pytest.fixture
def runscp_process(storage_root):
    """Start the real ``runscp`` on ephemeral ports against the test database."""
    from tests.dimse.test_runscp import Runscp

    started = []

    def _start(*args):
        process = Runscp(storage_root, *args)
        started.append(process)
        return process

    yield _start
    for process in started:
        process.stop(signal.SIGKILL)
