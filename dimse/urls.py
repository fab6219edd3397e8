"""Web pages of the dimse app (mounted at the root by pacs.web_urls)."""

from django.urls import path

from pacs.views.operations import PlaceholderView

urlpatterns = [
    path("qr/", PlaceholderView.as_view(nav="qr"), name="qr-page"),
]
