"""Web pages of the worklist app (mounted at the root by pacs.web_urls)."""

from django.urls import path

from pacs.views.operations import PlaceholderView

urlpatterns = [
    path("worklist/", PlaceholderView.as_view(nav="worklist"), name="worklist-list"),
]
