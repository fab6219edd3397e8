"""Runtime configuration: the one ArchiveConfig row, seeded from settings.

Archive policies (duplicates, compression, free-space floor, path template)
and the web settings read per request (CORS origins, external viewer URL
template, public URL), with the validation of each value.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import string
import threading
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from pacs.models import ArchiveConfig

logger = logging.getLogger(__name__)

# Read per request (CORS, study list) and per instance (ingest): a few seconds of
# staleness in other processes is the price of one query per process per period.
_CACHE_SECONDS = 2.0
_lock = threading.Lock()
_cached: tuple[float, ArchiveConfig] | None = None


# Placeholders of the external viewer URL template.
VIEWER_PLACEHOLDERS = ("StudyInstanceUID", "AccessionNumber", "PatientID", "base")
# Schemes a viewer link may never use: they run code or read files in the user's browser.
_FORBIDDEN_SCHEMES = {"javascript", "vbscript", "data", "file", "blob", "about"}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_MAX_ORIGINS = 50


def _defaults() -> dict:
    seeds = {
        "duplicate_policy": settings.PACS_DUPLICATE_POLICY,
        "update_attributes": settings.PACS_UPDATE_ATTRIBUTES,
        "min_free_mb": settings.PACS_MIN_FREE_MB,
        "compression": settings.PACS_COMPRESSION,
        "path_template": settings.PACS_PATH_TEMPLATE,
    }
    for name, env, clean in (
        ("cors_allowed_origins", "PACS_CORS_ALLOWED_ORIGINS", cors_origins_clean),
        ("external_viewer_url", "PACS_EXTERNAL_VIEWER_URL", external_viewer_url_clean),
        ("public_url", "PACS_PUBLIC_URL", public_url_clean),
    ):
        try:
            seeds[name] = clean(getattr(settings, env))
        except ValidationError as exc:
            raise ImproperlyConfigured(f"{env}: {' '.join(exc.messages)}") from None
    return seeds


def archive_config_get(*, fresh: bool = False) -> ArchiveConfig:
    """Return the archive configuration, creating it from ``PACS_*`` settings once.

    Cached for two seconds per process so ingest does not read it per instance;
    changes made in the admin or API apply within that time in every process.
    """
    global _cached
    now = time.monotonic()
    with _lock:
        if not fresh and _cached and now - _cached[0] < _CACHE_SECONDS:
            return _cached[1]
    config, _created = ArchiveConfig.objects.get_or_create(pk=1, defaults=_defaults())
    with _lock:
        _cached = (now, config)
    return config


def archive_config_update(**fields: object) -> ArchiveConfig:
    """Validate and save archive configuration fields (keyword names = model fields).

    Raises
    ------
    django.core.exceptions.ValidationError
        A field value is invalid (unknown choice, unsafe path template, ...).
    """
    global _cached
    with transaction.atomic():
        config = archive_config_get(fresh=True)
        for name, value in fields.items():
            if not hasattr(config, name) or name in ("id", "pk", "updated_at"):
                raise ValueError(f"Unknown archive setting {name!r}")
            setattr(config, name, value)
        config.full_clean()
        config.save()
    with _lock:
        _cached = None
    return config


def archive_config_cache_clear() -> None:
    """Forget the cached configuration (tests and settings changes)."""
    global _cached
    with _lock:
        _cached = None


# --- Validation of the web settings -------------------------------------------------


def host_normalise(value: str) -> str:
    """An IP address in canonical form or an RFC 1123 host name in lower case.

    Raises
    ------
    ValueError
        *value* is neither (``"10.0.0.256"`` is a mistyped address, not a name).
    """
    host = value.strip()
    try:
        return str(ipaddress.ip_address(host.strip("[]") if host.startswith("[") else host))
    except ValueError:
        pass
    name = (host[:-1] if host.endswith(".") else host).lower()
    labels = name.split(".")
    if len(name) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels) or all(
        label.isdigit() for label in labels
    ):
        raise ValueError(f"{value[:80]!r} is not an IP address or host name")
    return name


def _netloc(host: str, port: int | None, scheme: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None or _DEFAULT_PORTS.get(scheme) == port else f"{shown}:{port}"


def cors_origin_clean(value: str) -> str:
    """One browser origin as the ``Origin`` header carries it: ``scheme://host[:port]``.

    Scheme and host are lower-cased and a default port is dropped (browsers
    never send ``:443`` for https), so comparison with the header is exact.

    Raises
    ------
    ValidationError
        Not http(s), no host, or a path, query, fragment or user name.
    """
    text = str(value or "").strip()
    message = _("%(value)s is not an origin: use scheme://host[:port], e.g. http://viewer.example:3000.")
    try:
        parts = urlsplit(text)
        port = parts.port
        host = host_normalise(parts.hostname or "")
    except ValueError:
        raise ValidationError(message, params={"value": repr(text[:80])}) from None
    scheme = parts.scheme.lower()
    if (scheme not in _DEFAULT_PORTS or parts.path not in ("", "/") or parts.query or parts.fragment
            or parts.username is not None or "*" in text):
        raise ValidationError(message, params={"value": repr(text[:80])})
    return f"{scheme}://{_netloc(host, port, scheme)}"


def cors_origins_clean(values: object) -> list[str]:
    """Validated, de-duplicated origins from a list or a text of lines/commas/spaces.

    Raises
    ------
    ValidationError
        One message per invalid origin, or more than 50 origins.
    """
    items = re.split(r"[\s,]+", values) if isinstance(values, str) else list(values or [])
    origins, errors = [], []
    for item in items:
        if not str(item).strip():
            continue
        try:
            origin = cors_origin_clean(str(item))
        except ValidationError as exc:
            errors.extend(exc.messages)
            continue
        if origin not in origins:
            origins.append(origin)
    if len(origins) > _MAX_ORIGINS:
        errors.append(_("At most %(n)d origins.") % {"n": _MAX_ORIGINS})
    if errors:
        raise ValidationError(errors)
    return origins


def external_viewer_url_clean(value: str) -> str:
    """Validate the external viewer URL template ('' = no external viewer link).

    Only the placeholders of :data:`VIEWER_PLACEHOLDERS`, without format
    specifications; at least ``{StudyInstanceUID}`` or ``{AccessionNumber}``;
    an absolute URL of a viewer scheme (``radiant://``, ``https://``, or
    ``{base}/...``), never ``javascript:``/``data:``/``file:``.

    Raises
    ------
    ValidationError
        Unknown placeholder, unbalanced braces, no study placeholder, bad scheme.
    """
    text = str(value or "").strip()
    if not text:
        return ""
    if len(text) > 1024 or any(ch.isspace() or not ch.isprintable() for ch in text):
        raise ValidationError(_("The viewer URL must be one line without spaces (at most 1024 characters)."))
    try:
        fields = [(name, spec, conversion) for _literal, name, spec, conversion in string.Formatter().parse(text)
                  if name is not None]
    except ValueError:
        raise ValidationError(_("Unbalanced { or } in the viewer URL (write {{ or }} for a literal brace).")) from None
    allowed = ", ".join("{%s}" % name for name in VIEWER_PLACEHOLDERS)
    for name, spec, conversion in fields:
        if name not in VIEWER_PLACEHOLDERS or spec or conversion:
            raise ValidationError(_("Unknown placeholder {%(name)s}; use %(allowed)s."),
                                  params={"name": f"{name}{'!' + conversion if conversion else ''}"
                                                  f"{':' + spec if spec else ''}", "allowed": allowed})
    if not {"StudyInstanceUID", "AccessionNumber"} & {name for name, _spec, _conv in fields}:
        raise ValidationError(_("The viewer URL needs {StudyInstanceUID} or {AccessionNumber}."))
    sample = text.format(StudyInstanceUID="1.2.3", AccessionNumber="A1", PatientID="P1", base="https://pacs.example")
    scheme = urlsplit(sample).scheme.lower()
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme) or scheme in _FORBIDDEN_SCHEMES:
        raise ValidationError(_("The viewer URL must start with a viewer scheme (radiant://, https://) or {base}."))
    return text


def public_url_clean(value: str) -> str:
    """The public base URL ('' = the request's host): http(s)://host[:port][/prefix], no trailing slash.

    Raises
    ------
    ValidationError
        Not an absolute http(s) URL, or it has a query, fragment or user name.
    """
    text = str(value or "").strip()
    if not text:
        return ""
    message = _("%(value)s is not a base URL: use http(s)://host[:port][/path], e.g. https://pacs.example.org.")
    try:
        parts = urlsplit(text)
        port = parts.port
        host = host_normalise(parts.hostname or "")
    except ValueError:
        raise ValidationError(message, params={"value": repr(text[:80])}) from None
    scheme = parts.scheme.lower()
    if (scheme not in _DEFAULT_PORTS or parts.query or parts.fragment or parts.username is not None
            or len(text) > 255 or any(ch.isspace() for ch in text)):
        raise ValidationError(message, params={"value": repr(text[:80])})
    return f"{scheme}://{_netloc(host, port, scheme)}{parts.path.rstrip('/')}"


# --- Reads of the web settings, per request -----------------------------------------


def cors_request_allowed(sender: object = None, *, request, **kwargs: object) -> bool:
    """django-cors-headers ``check_request_enabled`` receiver: is the request's Origin configured?

    The origins are runtime configuration (``ArchiveConfig.cors_allowed_origins``,
    Settings page), read through the per-process cache; requests without an
    ``Origin`` header cost nothing.
    """
    origin = request.headers.get("origin")
    if not origin:
        return False
    try:
        origin = cors_origin_clean(origin)
    except ValidationError:
        return False
    return origin in archive_config_get().cors_allowed_origins


def public_base_url() -> str:
    """The configured public base URL without trailing slash ('' = use the request's host)."""
    return archive_config_get().public_url


def external_viewer_url(*, study_instance_uid: str, accession_number: str, patient_id: str, base: str) -> str:
    """The external viewer URL of one study ('' when none is configured); values are URL-quoted."""
    from urllib.parse import quote

    template = archive_config_get().external_viewer_url
    if not template:
        return ""
    return template.format(StudyInstanceUID=quote(study_instance_uid, safe=""),
                           AccessionNumber=quote(accession_number, safe=""),
                           PatientID=quote(patient_id, safe=""), base=base)
