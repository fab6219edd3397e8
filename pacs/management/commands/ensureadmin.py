"""``python manage.py ensureadmin``: create admin/admin on first run, warn while unchanged."""

from django.core.management.base import BaseCommand

from pacs.services.users import admin_ensure, default_password_in_use


class Command(BaseCommand):
    help = "Create the superuser admin/admin if no user exists; warn while its password is 'admin'."

    def handle(self, *args, **options) -> None:
        if admin_ensure():
            self.stdout.write("Created superuser 'admin' with password 'admin'.")
        if default_password_in_use():
            self.stderr.write(self.style.WARNING(
                "WARNING: user 'admin' still has the default password 'admin'. "
                "Change it at http://localhost:8000/admin/password_change/ before real use."
            ))
