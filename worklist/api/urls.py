"""URL routes of worklist/api (filled in by its issue)."""

urlpatterns: list = []
