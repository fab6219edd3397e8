"""Shared plumbing of the DICOMweb views: auth, permissions, UID checks, errors, URLs."""

from __future__ import annotations

import logging
import re

from django.conf import settings
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.authentication import BasicAuthentication, SessionAuthentication, TokenAuthentication
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from dicomweb.renderers import DicomJSONRenderer, PlainJSONRenderer
from pacs.exceptions import PacsError
from pacs.selectors import NotFound
from pacs.storage import uid_is_valid

logger = logging.getLogger("dicomweb")

_UID_KWARGS = ("study", "series", "instance")
_UID_NAMES = {"study": "StudyInstanceUID", "series": "SeriesInstanceUID", "instance": "SOPInstanceUID"}


class DicomWebPermission(BasePermission):
    """Reads need a logged-in user (or ``PACS_ANONYMOUS_READ``); STOW-RS needs ``pacs.add_instance``.

    The store permission comes from Django groups (give a group
    ``pacs.add_instance`` to let its users or tokens upload).
    """

    message = "Authentication credentials were not provided or lack the needed permission."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if request.method in SAFE_METHODS:
            return bool(settings.PACS_ANONYMOUS_READ or (user and user.is_authenticated))
        return bool(user and user.is_authenticated and user.has_perm("pacs.add_instance"))


def uid_check(value: str, name: str) -> str:
    """Return *value* or raise a 400 naming the parameter (never reaches a path)."""
    if not uid_is_valid(value):
        shown = value[:70].encode("unicode_escape").decode()
        raise exceptions.ValidationError({name: [f"{shown!r} is not a valid UID (digits and dots, 1-64 characters)"]})
    return value


def base_url(request) -> str:
    """Public root (no trailing slash) for RetrieveURL/BulkDataURI: the configured public URL or the request's host."""
    from pacs.services.config import public_base_url

    public = public_base_url()  # Settings page (ArchiveConfig.public_url), seeded from PACS_PUBLIC_URL
    if public:
        return public
    root = request.build_absolute_uri("/").rstrip("/")
    host = request.META.get("HTTP_HOST", "")
    port = request.META.get("SERVER_PORT", "")
    direct = "HTTP_X_FORWARDED_FOR" not in request.META and "HTTP_X_FORWARDED_HOST" not in request.META
    if direct and host and ":" not in host.rsplit("]", 1)[-1] and port not in ("", "80", "443"):
        # dicomweb-client sends "Host: name" without the port; a direct (unproxied)
        # request reached us on SERVER_PORT, so URIs must carry it to work.
        root += f":{port}"
    return root


def study_url(request, study: str) -> str:
    return f"{base_url(request)}/dicomweb/studies/{study}"


def series_url(request, study: str, series: str) -> str:
    return f"{study_url(request, study)}/series/{series}"


def instance_url(request, study: str, series: str, instance: str) -> str:
    return f"{series_url(request, study, series)}/instances/{instance}"


class DicomWebView(APIView):
    """Base of every DICOMweb/WADO-URI view.

    * Token first so an anonymous request gets ``401`` with ``WWW-Authenticate``;
    * UID path segments validated before anything else (400 naming the UID);
    * domain errors mapped to their HTTP status with a JSON ``detail``;
    * DRF's content negotiation is bypassed: each view negotiates its own
      DICOM media types (406 with a message) and errors are JSON.
    """

    authentication_classes = [TokenAuthentication, BasicAuthentication, SessionAuthentication]
    permission_classes = [DicomWebPermission]
    renderer_classes = [DicomJSONRenderer, PlainJSONRenderer]

    def perform_content_negotiation(self, request, force=False):
        accept = request.META.get("HTTP_ACCEPT", "")
        if "application/json" in accept and "dicom+json" not in accept:
            return PlainJSONRenderer(), PlainJSONRenderer.media_type
        return DicomJSONRenderer(), DicomJSONRenderer.media_type

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        for key in _UID_KWARGS:
            if key in kwargs:
                uid_check(kwargs[key], _UID_NAMES[key])

    def handle_exception(self, exc):
        if isinstance(exc, NotFound):
            exc = exceptions.NotFound(str(exc))
        elif isinstance(exc, Http404):
            exc = exceptions.NotFound(str(exc) or "Not found")
        if isinstance(exc, PacsError):
            if exc.http_status >= 500:
                logger.error("dicomweb error status=%s message=%s", exc.http_status, exc.message)
            return Response({"detail": exc.message}, status=exc.http_status)
        return super().handle_exception(exc)


def not_acceptable(message: str) -> exceptions.NotAcceptable:
    return exceptions.NotAcceptable(message)


def bad_param(name: str, message: str) -> exceptions.ValidationError:
    return exceptions.ValidationError({name: [message]})


_INT_RE = re.compile(r"^\d{1,9}$")


def int_param(request, name: str, *, default: int | None = None, minimum: int = 0, maximum: int | None = None):
    """A non-negative integer query parameter (400 naming it when malformed)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not _INT_RE.match(raw.strip()):
        raise bad_param(name, f"must be an integer, got {raw[:40]!r}")
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise bad_param(name, f"must be {bound}")
    return value


HTTP_207 = status.HTTP_207_MULTI_STATUS
