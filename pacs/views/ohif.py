"""The OHIF viewer, served from the folder ``manage.py installohif`` fills.

OHIF is a single-page app: any path under ``/ohif/`` that is not a file is a
client-side route (``/ohif/viewer?StudyInstanceUIDs=...``) and gets index.html.
Files are resolved inside ``PACS_OHIF_DIR`` only (no path from the request
escapes it) and streamed with ``FileResponse``.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from django.conf import settings
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import FileResponse, Http404, HttpResponse
from django.utils.translation import gettext as _
from django.views import View

mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")

# Hashed bundles never change: cache them; index.html and app-config.js must revalidate.
_IMMUTABLE_SUFFIXES = (".js", ".css", ".wasm", ".woff", ".woff2", ".png", ".svg", ".ico")
_NO_CACHE = {"index.html", "app-config.js"}


class OhifView(LoginRequiredMixin, View):
    def get(self, request, path: str = ""):
        root = Path(settings.PACS_OHIF_DIR)
        index = root / "index.html"
        if not index.is_file():
            return HttpResponse(
                _("The OHIF viewer is not installed. Run: python manage.py installohif"),
                status=503,
                content_type="text/plain; charset=utf-8",
            )
        target = (root / path).resolve() if path else index
        if root.resolve() not in target.parents and target != index:
            raise Http404("Not found")
        if not target.is_file():
            if "." in Path(path).name and not path.endswith(".html"):
                raise Http404("Not found")  # a missing asset, not a client-side route
            target = index
        content_type, encoding = mimetypes.guess_type(target.name)
        response = FileResponse(target.open("rb"), content_type=content_type or "application/octet-stream")
        if encoding:
            response.headers["Content-Encoding"] = encoding
        if target.name in _NO_CACHE or target == index:
            response.headers["Cache-Control"] = "no-cache"
        elif target.suffix in _IMMUTABLE_SUFFIXES and "." in target.stem:
            response.headers["Cache-Control"] = "private, max-age=604800"
        return response
