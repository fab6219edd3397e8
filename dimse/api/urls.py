"""URL routes of dimse/api (filled in by its issue)."""

urlpatterns: list = []
