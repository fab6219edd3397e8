"""URL routes of pacs/api (filled in by its issue)."""

urlpatterns: list = []
