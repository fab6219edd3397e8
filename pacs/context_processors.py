"""Template context shared by every page."""

from __future__ import annotations

from django.http import HttpRequest


def default_password_warning(request: HttpRequest) -> dict:
    """``default_password_warning`` is True while admin/admin is unchanged (banner)."""
    user = getattr(request, "user", None)
    if not user or not user.is_authenticated or user.username != "admin":
        return {"default_password_warning": False}
    return {"default_password_warning": user.check_password("admin")}
