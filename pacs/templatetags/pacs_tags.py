"""Formatting filters for DICOM values in templates (formatting only, no queries)."""

from __future__ import annotations

import datetime

from django import template
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _

register = template.Library()


@register.filter
def person_name(value: str | None) -> str:
    """A PN value for display: component groups joined, ``^`` shown as spaces.

    ``WANG^XIAOMING=王^小明`` -> ``王小明 (WANG XIAOMING)``: the ideographic group
    first (what a Chinese reader expects), the alphabetic one in brackets.
    Autoescaping still applies to the result (patient names are attacker-controlled).
    """
    if not value:
        return ""
    groups = str(value).split("=")
    alphabetic = " ".join(part for part in groups[0].split("^") if part).strip()
    ideographic = "".join(part for part in groups[1].split("^") if part).strip() if len(groups) > 1 else ""
    if ideographic and alphabetic:
        return f"{ideographic} ({alphabetic})"
    return ideographic or alphabetic


@register.filter
def filesize(value: int | None) -> str:
    return filesizeformat(value or 0)


@register.filter
def dicom_date(value: datetime.date | None) -> str:
    return value.isoformat() if value else ""


@register.filter
def dicom_time(value: datetime.time | None) -> str:
    return value.strftime("%H:%M:%S") if value else ""


@register.filter
def backslash_join(value: str | None, sep: str = ", ") -> str:
    """``CT\\SR`` -> ``CT, SR`` (multi-valued DICOM strings)."""
    return sep.join(part for part in str(value or "").split("\\") if part)


@register.filter
def percent(done: int | None, total: int | None) -> int:
    return int(100 * (done or 0) / total) if total else 0


@register.simple_tag
def js_strings() -> dict:
    """Translated strings the page scripts need (rendered with ``json_script``)."""
    return {
        "confirmDelete": _("Delete this for good? This cannot be undone."),
        "loading": _("Loading…"),
        "failed": _("Failed"),
        "uploaded": _("uploaded"),
        "rejected": _("rejected"),
        "noSeries": _("No series"),
        "instances": _("instances"),
        "open": _("Open"),
        "up": _("up"),
        "down": _("down"),
    }
