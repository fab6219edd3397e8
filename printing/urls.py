"""Web pages of the printing app (mounted at the root by pacs.web_urls)."""

from django.urls import path

from pacs.views.operations import PlaceholderView

urlpatterns = [
    path("print/", PlaceholderView.as_view(nav="print"), name="print-list"),
]
