"""Web pages (templates + static JS). Until the pages exist, / goes to the admin."""

from django.urls import path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
