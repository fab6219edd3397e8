"""Project settings: one module, every value read from the environment.

Embedded defaults need nothing but this checkout: SQLite in WAL mode and all
files (database, archive, logs, temporary files) under ``./data``.  Scale-out
switches are ``DATABASE_URL`` (PostgreSQL) and ``REDIS_URL`` (django-q2 broker).
Runtime-editable configuration (listeners, allowed callers, remote nodes,
archive policies) lives in database models; the ``PACS_*`` values below only
seed their defaults.  Every environment variable is documented in README.md.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# --- Environment, one alphabetised block -------------------------------------
# Database URL; default is the embedded SQLite file under PACS_DATA_DIR.
_DATABASE_URL = env.str("DATABASE_URL", default="")
# Django debug mode (never in production).
DEBUG = env.bool("DJANGO_DEBUG", default=False)
# Hosts the web server answers for; a PACS on a hospital LAN is reached by IP.
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["*"])
# Secret key; generated once into PACS_DATA_DIR/secret_key when not given.
_SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
# Read access to DICOMweb/WADO without login (off: patient data needs a user).
PACS_ANONYMOUS_READ = env.bool("PACS_ANONYMOUS_READ", default=False)
# Default archive compression: none, rle, jpeg-ls-lossless, j2k-lossless, j2k-lossy.
PACS_COMPRESSION = env.str("PACS_COMPRESSION", default="none")
# Origins allowed to call the HTTP API from a browser (OHIF on another port); seed of the Settings page value.
PACS_CORS_ALLOWED_ORIGINS = env.list("PACS_CORS_ALLOWED_ORIGINS", default=[])
# Root for the index, archive, logs and temporary files.
PACS_DATA_DIR = Path(env.str("PACS_DATA_DIR", default=str(BASE_DIR / "data"))).resolve()
# Listener bind address for every DIMSE listener.
PACS_BIND_ADDRESS = env.str("PACS_BIND_ADDRESS", default="0.0.0.0")
# Log pynetdicom's PDU/DIMSE detail (very verbose).
PACS_DIMSE_DEBUG = env.bool("PACS_DIMSE_DEBUG", default=False)
# Duplicate SOP Instance UID policy: keep-first, replace or reject.
PACS_DUPLICATE_POLICY = env.str("PACS_DUPLICATE_POLICY", default="keep-first")
# External viewer URL template for "open in ..." (e.g. RadiAnt: radiant://?n=pstv&v=0020000D&v={StudyInstanceUID});
# placeholders {StudyInstanceUID} {AccessionNumber} {PatientID} {base}. Empty hides the action. Seed; Settings page.
PACS_EXTERNAL_VIEWER_URL = env.str("PACS_EXTERNAL_VIEWER_URL", default="")
# Log level of the PACS's own loggers.
PACS_LOG_LEVEL = env.str("PACS_LOG_LEVEL", default="INFO").upper()
# Rotate a service log when it passes this size; keep this many old files.
PACS_LOG_MAX_MB = env.int("PACS_LOG_MAX_MB", default=20)
PACS_LOG_BACKUPS = env.int("PACS_LOG_BACKUPS", default=10)
# Maximum simultaneous associations per listener.
PACS_MAX_ASSOCIATIONS = env.int("PACS_MAX_ASSOCIATIONS", default=32)
# Where `manage.py installohif` puts the OHIF viewer served under /ohif/ (not in git).
PACS_OHIF_DIR = Path(env.str("PACS_OHIF_DIR", default=str(BASE_DIR / "ohif" / "dist"))).resolve()
# Maximum PDU size we receive (bytes); large PDUs cut per-PDU overhead.
PACS_MAX_PDU = env.int("PACS_MAX_PDU", default=1_048_576)
# C-STORE on the storage listener read and answered by dimse.handlers.storage_wire
# (False: pynetdicom's own message handling, several times the CPU per instance).
PACS_STORE_WIRE = env.bool("PACS_STORE_WIRE", default=True)
# A received data set larger than this is written to a temp file as it arrives (fast path).
PACS_STORE_SPILL_MB = env.float("PACS_STORE_SPILL_MB", default=64)
# Refuse storage (0xA700) when free space on the archive falls below this.
PACS_MIN_FREE_MB = env.int("PACS_MIN_FREE_MB", default=1024)
# Archive path template (placeholders: see pacs.storage.PATH_PLACEHOLDERS).
PACS_PATH_TEMPLATE = env.str(
    "PACS_PATH_TEMPLATE",
    default="{StudyInstanceUID}/{SeriesInstanceUID}/{SOPInstanceUID}.dcm",
)
# Person-name matching (C-FIND, QIDO-RS, study list) ignores case: "doe*" finds "DOE^JOHN".
PACS_PN_CASE_INSENSITIVE = env.bool("PACS_PN_CASE_INSENSITIVE", default=True)
# Resolution (dots per inch) at which printed films are composed (Print SCP).
PACS_PRINT_DPI = env.int("PACS_PRINT_DPI", default=150)
# Listener AE titles and ports (seed values; editable at run time).
PACS_PRINT_AET = env.str("PACS_PRINT_AET", default="PRINTSCP")
PACS_PRINT_PORT = env.int("PACS_PRINT_PORT", default=11115)
# Public base URL used in BulkDataURI/RetrieveURL when behind a proxy (seed; Settings page).
PACS_PUBLIC_URL = env.str("PACS_PUBLIC_URL", default="")
PACS_QR_AET = env.str("PACS_QR_AET", default="QRSCP")
# C-FIND answers at most this many matches, then a warning status (never a silent cap).
PACS_QR_MAX_RESULTS = env.int("PACS_QR_MAX_RESULTS", default=10_000)
PACS_QR_PORT = env.int("PACS_QR_PORT", default=11114)
# Where the archive lives (shared by every runscp/web worker when scaled out).
PACS_STORAGE_ROOT = Path(
    env.str("PACS_STORAGE_ROOT", default=str(PACS_DATA_DIR / "archive"))
).resolve()
PACS_STORE_AET = env.str("PACS_STORE_AET", default="STORESCP")
PACS_STORE_PORT = env.int("PACS_STORE_PORT", default=11112)
# What is flushed to the device before an instance is acknowledged (C-STORE,
# STOW-RS): "full" = file data, its directory entry and the index commit (a power
# cut loses nothing acknowledged); "file" = file data only, as Orthanc does; the
# directory entry and the index commit are left to the OS (safe against a crashed
# or killed process, not against a power cut in the last seconds).
PACS_SYNC = env.str("PACS_SYNC", default="full")
# Newer instances update patient/study attributes in the index.
PACS_UPDATE_ATTRIBUTES = env.bool("PACS_UPDATE_ATTRIBUTES", default=True)
PACS_WORKLIST_AET = env.str("PACS_WORKLIST_AET", default="WORKLISTSCP")
# Days COMPLETED/DISCONTINUED worklist items stay listed before housekeeping removes them.
PACS_WORKLIST_RETENTION_DAYS = env.int("PACS_WORKLIST_RETENTION_DAYS", default=30)
PACS_WORKLIST_PORT = env.int("PACS_WORKLIST_PORT", default=11113)
# Redis URL: when set, django-q2 uses Redis as its broker instead of the database.
REDIS_URL = env.str("REDIS_URL", default="")
# Seconds a web session lives without activity.
SESSION_COOKIE_AGE = env.int("PACS_SESSION_SECONDS", default=8 * 3600)

# --- Validation (fail loudly at start-up) ------------------------------------
_choices = {
    "PACS_DUPLICATE_POLICY": (PACS_DUPLICATE_POLICY, {"keep-first", "replace", "reject"}),
    "PACS_COMPRESSION": (
        PACS_COMPRESSION,
        {"none", "rle", "jpeg-ls-lossless", "j2k-lossless", "j2k-lossy"},
    ),
    "PACS_LOG_LEVEL": (PACS_LOG_LEVEL, {"DEBUG", "INFO", "WARNING", "ERROR"}),
    "PACS_SYNC": (PACS_SYNC, {"full", "file"}),
}
if not 50 <= PACS_PRINT_DPI <= 600:
    raise ImproperlyConfigured(f"PACS_PRINT_DPI={PACS_PRINT_DPI} is not valid; use 50-600 dots per inch.")
for _name, (_value, _allowed) in _choices.items():
    if _value not in _allowed:
        raise ImproperlyConfigured(
            f"{_name}={_value!r} is not valid; use one of {', '.join(sorted(_allowed))}."
        )
for _name in ("PACS_STORE_AET", "PACS_WORKLIST_AET", "PACS_QR_AET", "PACS_PRINT_AET"):
    _value = globals()[_name]
    if not 0 < len(_value) <= 16 or "\\" in _value or not _value.isprintable():
        raise ImproperlyConfigured(f"{_name}={_value!r}: an AE title is 1-16 printable characters.")
for _origin in PACS_CORS_ALLOWED_ORIGINS:
    if not re.fullmatch(r"https?://[^/\s?#@*]+/?", _origin.strip(), flags=re.IGNORECASE):
        raise ImproperlyConfigured(
            f"PACS_CORS_ALLOWED_ORIGINS: {_origin!r} is not an origin; use scheme://host[:port], comma separated."
        )
if PACS_PUBLIC_URL and not re.fullmatch(r"https?://[^/\s?#@]+(/\S*)?", PACS_PUBLIC_URL, flags=re.IGNORECASE):
    raise ImproperlyConfigured(f"PACS_PUBLIC_URL={PACS_PUBLIC_URL!r}: use http(s)://host[:port][/path].")
for _name in ("PACS_STORE_PORT", "PACS_WORKLIST_PORT", "PACS_QR_PORT", "PACS_PRINT_PORT"):
    if not 0 <= globals()[_name] <= 65535:
        raise ImproperlyConfigured(f"{_name} must be a TCP port between 0 and 65535.")
if PACS_WORKLIST_RETENTION_DAYS < 1:
    raise ImproperlyConfigured("PACS_WORKLIST_RETENTION_DAYS must be a whole number of days, at least 1.")

PACS_LOG_DIR = PACS_DATA_DIR / "logs"
PACS_TEMP_DIR = PACS_DATA_DIR / "tmp"
for _directory in (PACS_DATA_DIR, PACS_LOG_DIR, PACS_TEMP_DIR, PACS_STORAGE_ROOT):
    try:
        _directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(f"Cannot create {_directory}: {exc}. Set PACS_DATA_DIR.") from exc

if _SECRET_KEY:
    SECRET_KEY = _SECRET_KEY
else:
    _key_file = PACS_DATA_DIR / "secret_key"
    if not _key_file.exists():
        _key_file.write_text(secrets.token_urlsafe(50))
        _key_file.chmod(0o600)
    SECRET_KEY = _key_file.read_text().strip()

# --- Django -------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "pacs",
    "dimse",
    "dicomweb",
    "worklist",
    "printing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "pacs.middleware.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "pacs.urls"
WSGI_APPLICATION = "pacs.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "pacs.context_processors.default_password_warning",
            ],
        },
    },
]

if _DATABASE_URL:
    DATABASES = {"default": env.db_url_config(_DATABASE_URL)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
        DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
        if PACS_SYNC == "file":  # commits not waited for on the server's WAL flush
            DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c synchronous_commit=off"
        # Per process, so concurrent test runs against one server never collide.
        DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": PACS_DATA_DIR / "db.sqlite3",
        }
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while runscp writes; IMMEDIATE transactions
    # take the write lock up front so concurrent writers queue on busy_timeout
    # instead of failing with "database is locked"; synchronous=FULL makes a
    # commit durable before the C-STORE response is sent (NORMAL with PACS_SYNC=file).
    DATABASES["default"]["OPTIONS"] = {
        "init_command": f"PRAGMA journal_mode=WAL; PRAGMA synchronous={'FULL' if PACS_SYNC == 'full' else 'NORMAL'};",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # File-backed so listener threads share the test database; per process so
    # concurrent test runs on one machine never collide.
    DATABASES["default"]["TEST"] = {"NAME": str(PACS_TEMP_DIR / f"test-db-{os.getpid()}.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("PACS_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# Studies arrive as large uploads (STOW-RS, web upload): no size cap on the body,
# but Django still spools big bodies to PACS_TEMP_DIR instead of memory.
DATA_UPLOAD_MAX_MEMORY_SIZE = None
DATA_UPLOAD_MAX_NUMBER_FIELDS = 100_000
FILE_UPLOAD_TEMP_DIR = str(PACS_TEMP_DIR)

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "SAMEORIGIN"

# CORS origins are runtime configuration (ArchiveConfig.cors_allowed_origins, edited on the
# Settings page and seeded from PACS_CORS_ALLOWED_ORIGINS): django-cors-headers asks
# pacs.services.config.cors_request_allowed per request through its check_request_enabled
# signal (connected in PacsConfig.ready).  The static list stays empty.
CORS_ALLOWED_ORIGINS: list[str] = []
CORS_ALLOW_CREDENTIALS = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "PACS API",
    "DESCRIPTION": "DICOMweb (QIDO-RS, WADO-RS, STOW-RS), WADO-URI and the control API.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- django-q2 ----------------------------------------------------------------
Q_CLUSTER = {
    "name": "pacs",
    "workers": env.int("PACS_JOB_WORKERS", default=2),
    "timeout": 3600,
    "retry": 3700,
    "max_attempts": 1,
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 1000,
    "label": "Background jobs",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 1

# --- Logging: one file per service, key=value lines the UI can parse ----------
PACS_LOG_SERVICES = {
    # service: logger names whose records go to <service>.log
    "storage": ["pacs", "dimse", "dimse.handlers.storage"],
    "qr": ["dimse.handlers.query_retrieve", "dimse.scu", "dimse.jobs"],
    "worklist": ["worklist", "dimse.handlers.worklist", "dimse.handlers.mpps"],
    "print": ["printing", "dimse.handlers.printing"],
    "web": ["django", "dicomweb", "pacs.api", "pacs.views"],
    "jobs": ["django-q", "pacs.tasks"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "kv": {
            "format": "%(asctime)s level=%(levelname)s logger=%(name)s "
            "thread=%(threadName)s %(message)s",
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "kv"},
        **{
            f"file_{service}": {
                # WatchedFileHandler: several processes append to one file and
                # reopen it after pacs.services.logs.log_rotate renames it.
                "class": "logging.handlers.WatchedFileHandler",
                "filename": str(PACS_LOG_DIR / f"{service}.log"),
                "formatter": "kv",
                "encoding": "utf-8",
                "delay": True,
            }
            for service in PACS_LOG_SERVICES
        },
    },
    "loggers": {
        **{
            name: {
                "handlers": ["console", f"file_{service}"],
                "level": "INFO" if name in ("django", "django-q") else PACS_LOG_LEVEL,
                "propagate": False,
            }
            for service, names in PACS_LOG_SERVICES.items()
            for name in names
        },
        "pynetdicom": {
            "handlers": ["console", "file_storage"],
            "level": "DEBUG" if PACS_DIMSE_DEBUG else "WARNING",
            "propagate": False,
        },
    },
}
