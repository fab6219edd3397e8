"""URL routes of printing/api (filled in by its issue)."""

urlpatterns: list = []
