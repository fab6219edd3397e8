"""Users: the first-run admin account and the default-password warning."""

from __future__ import annotations

from django.contrib.auth import get_user_model

DEFAULT_USERNAME = "admin"
DEFAULT_PASSWORD = "admin"


def admin_ensure() -> bool:
    """Create superuser admin/admin when no user exists; return True if created."""
    User = get_user_model()
    if User.objects.exists():
        return False
    User.objects.create_superuser(DEFAULT_USERNAME, "", DEFAULT_PASSWORD)
    return True


def default_password_in_use() -> bool:
    """True while the ``admin`` user still has the password ``admin``."""
    user = get_user_model().objects.filter(username=DEFAULT_USERNAME, is_active=True).first()
    return bool(user and user.check_password(DEFAULT_PASSWORD))
