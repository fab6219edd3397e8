"""WSGI entry point (gunicorn pacs.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pacs.settings")
application = get_wsgi_application()
