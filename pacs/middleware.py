"""Security headers on every response (Content-Security-Policy and friends).

Django's own ``SecurityMiddleware`` sets ``X-Content-Type-Options: nosniff`` and
``XFrameOptionsMiddleware`` sets ``X-Frame-Options``; this adds what Django 5.2
lacks: a Content-Security-Policy, a Referrer-Policy and a Permissions-Policy.

Our pages load only same-origin scripts (no inline script: page data travels
in ``json_script`` blocks and data attributes), so ``script-src 'self'`` holds.
The OHIF bundle under ``/ohif/`` needs more: it compiles WebAssembly codecs,
starts blob: workers and its ``index.html`` carries an inline bootstrap, so
that prefix gets its own, wider policy (still same-origin only, no CDN).
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

PAGE_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        # Inline style attributes (progress bars, Django admin widgets); no inline script.
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        # Only our own pages may frame us (the viewer opens OHIF in the same origin).
        "frame-ancestors 'self'",
    ]
)

OHIF_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval' 'wasm-unsafe-eval' blob:",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self' data: blob:",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)

OHIF_PREFIX = "/ohif/"


class SecurityHeadersMiddleware:
    """Add CSP, Referrer-Policy and Permissions-Policy unless a view set its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = OHIF_POLICY if request.path.startswith(OHIF_PREFIX) else PAGE_POLICY
        response.headers.setdefault("Content-Security-Policy", policy)
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response
