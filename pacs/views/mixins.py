"""Shared pieces of the web views."""

from __future__ import annotations

from django.contrib.auth.mixins import LoginRequiredMixin


class PageMixin(LoginRequiredMixin):
    """Login required; ``nav`` names the highlighted top-bar entry."""

    nav = ""

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["nav"] = self.nav
        return context
