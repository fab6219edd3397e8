"""URL routes of dicomweb/api (filled in by its issue)."""

urlpatterns: list = []
