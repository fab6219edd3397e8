"""The Settings page: listeners, calling-AE allow lists, archive policies, web settings.

One form, validated as a whole before anything is written.  Writes go through
``dimse.services`` (listeners, allow-list entries) and
``pacs.services.config`` (archive and web settings).  When listeners or allow
lists change, every runscp restarts its listeners through the control channel
(``ListenerCommand``) and the page shows what runscp answered; web settings
(CORS origins, viewer link, public URL) apply to the next request.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.generic import TemplateView

from pacs.views import reads
from pacs.views.forms import AllowedCallerFormSet, ArchiveSettingsForm, ListenerForm, WebSettingsForm
from pacs.views.mixins import PageMixin

logger = logging.getLogger("pacs.views")

ALL_LISTENERS = "all"  # key of the allow list that applies to every listener
RESTART_SESSION_KEY = "pacs.settings_restart"  # id of the restart command whose outcome the page shows


class SettingsView(PageMixin, TemplateView):
    """Validated settings form; saving restarts the listeners when their settings changed."""

    template_name = "pacs/settings.html"
    nav = "settings"
    LISTENER_FIELDS = ("ae_title", "port", "enabled", "require_called_aet", "restrict_callers", "max_associations",
                       "network_timeout")
    ARCHIVE_FIELDS = ("duplicate_policy", "update_attributes", "min_free_mb", "compression", "path_template")
    WRITE_PERMISSIONS = ("dimse.change_listener", "pacs.change_archiveconfig")
    RESTART_WAIT_SECONDS = 8.0

    # --- Forms -------------------------------------------------------------------------
    def _forms(self, data=None) -> dict:
        from dimse.services import listener_config_list
        from pacs.services.config import archive_config_get

        removed = {int(v) for v in data.getlist("remove_caller") if v.isdigit()} if data is not None else set()
        callers = reads.allowed_callers_by_listener()
        listener_forms, sections = [], []
        for row in listener_config_list():
            form = ListenerForm(data, prefix=row.service, initial={f: getattr(row, f) for f in self.LISTENER_FIELDS})
            listener_forms.append((row, form))
            sections.append(_caller_section(key=row.service, service=row.service, label=row.get_service_display(),
                                            ae_title=row.ae_title, listener_form=form,
                                            rows=callers.get(row.service, []), data=data, removed=removed))
        sections.append(_caller_section(key=ALL_LISTENERS, service="", label=_("Every listener"), ae_title="",
                                        listener_form=None, rows=callers.get("", []), data=data, removed=removed))
        config = archive_config_get(fresh=True)
        return {
            "listener_forms": listener_forms,
            "caller_sections": sections,
            "removed": removed,
            "archive_form": ArchiveSettingsForm(data, prefix="archive",
                                                initial={f: getattr(config, f) for f in self.ARCHIVE_FIELDS}),
            "web_form": WebSettingsForm(data, prefix="web", initial=WebSettingsForm.initial_for(config)),
        }

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if "forms" not in kwargs:
            context["forms"] = self._forms()
        context.update(context["forms"])
        context["can_edit"] = self.request.user.has_perms(self.WRITE_PERMISSIONS)
        context["restart"] = self._restart_outcome(context["listener_forms"])
        context["readonly"] = [
            (_("OHIF folder"), str(settings.PACS_OHIF_DIR), "PACS_OHIF_DIR"),
            (_("Storage root"), str(settings.PACS_STORAGE_ROOT), "PACS_STORAGE_ROOT"),
            (_("Session timeout (s)"), str(settings.SESSION_COOKIE_AGE), "PACS_SESSION_SECONDS"),
        ]
        return context

    def _restart_outcome(self, listener_forms) -> dict | None:
        """What runscp answered to the restart this user's last save issued (shown once it answered)."""
        session = self.request.session
        command_id = session.get(RESTART_SESSION_KEY)
        command = reads.listener_command_get(command_id) if isinstance(command_id, int) else None
        if command is None or command.processed_at is not None:
            session.pop(RESTART_SESSION_KEY, None)
        if command is None:
            return None
        labels = {row.service: row.get_service_display() for row, _form in listener_forms}
        rows = [
            {"service": name, "label": labels.get(name, name), "running": bool(state.get("running")),
             "ae_title": state.get("ae_title") or "", "port": state.get("port"), "error": state.get("error") or ""}
            for name, state in (command.result or {}).items()
        ]
        return {"command": command, "pending": command.processed_at is None, "rows": rows}

    # --- Save ----------------------------------------------------------------------------
    def post(self, request):
        if not request.user.has_perms(self.WRITE_PERMISSIONS):
            raise PermissionDenied("Needs dimse.change_listener and pacs.change_archiveconfig.")
        forms = self._forms(request.POST)
        valid = _validate(forms)
        if valid:
            try:
                restart = _save(forms)
            except ValidationError as exc:  # a concurrent change (duplicate entry...) since validation
                forms["archive_form"].add_error(None, exc.messages)
                valid = False
        if not valid:
            messages.error(request, _("Please correct the errors below."))
            return self.render_to_response(self.get_context_data(forms=forms), status=400)
        logger.info("settings saved user=%s restart=%s", request.user.get_username(), restart)
        target = reverse("settings")
        request.session.pop(RESTART_SESSION_KEY, None)
        if not restart:
            messages.success(request, _("Settings saved."))
        elif not reads.runscp_running():
            messages.warning(request, _("Settings saved. runscp is not running: the listeners use the new "
                                        "settings when it starts ('python manage.py runscp')."))
        else:
            request.session[RESTART_SESSION_KEY] = self._restart(request)
        return HttpResponseRedirect(target)

    def _restart(self, request) -> int:
        """Ask every runscp to restart its listeners; flash the outcome; return the command id."""
        from dimse.services import listener_command_issue, listener_command_wait

        command = listener_command_issue(action="restart", user=request.user)
        command = listener_command_wait(command, timeout=self.RESTART_WAIT_SECONDS)
        if command.processed_at is None:
            messages.warning(request, _("Settings saved; runscp has not restarted the listeners yet."))
            return command.pk
        states = command.result or {}
        errors = [f"{name}: {state['error']}" for name, state in states.items() if state.get("error")]
        if errors:
            messages.error(request, _("Settings saved; some listeners failed to restart: %s") % "; ".join(errors))
        else:
            running = ", ".join(f"{name} {s.get('ae_title')}:{s.get('port')}" for name, s in states.items()
                                if s.get("running"))
            messages.success(request, _("Settings saved and listeners restarted: %s") % (running or "—"))
        return command.pk


def _caller_section(*, key: str, service: str, label: str, ae_title: str, listener_form, rows: list, data,
                    removed: set[int]) -> dict:
    return {
        "key": key,
        "service": service,
        "label": label,
        "ae_title": ae_title,
        "listener_form": listener_form,
        "callers": [(row, row.pk in removed) for row in rows],
        "formset": AllowedCallerFormSet(data, prefix=f"callers-{key}", form_kwargs={"service": service}),
    }


def _new_callers(section: dict) -> list[dict]:
    """The filled-in new rows of a section's formset (cleaned)."""
    return [
        {name: form.cleaned_data[name] for name in ("ae_title", "host", "description")}
        for form in section["formset"].forms
        if form.is_valid() and not form.is_blank()
    ]


def _validate(forms: dict) -> bool:
    """Validate every form (all of them, so every error shows) and the rules spanning forms."""
    results = [form.is_valid() for _row, form in forms["listener_forms"]]
    results += [section["formset"].is_valid() for section in forms["caller_sections"]]
    results += [forms["archive_form"].is_valid(), forms["web_form"].is_valid()]
    valid = all(results)
    ports: dict[int, str] = {}
    for row, form in forms["listener_forms"]:
        port = form.cleaned_data.get("port") if form.is_valid() else None
        if port in ports:
            form.add_error("port", _("Port %(port)s is already used by %(other)s.")
                           % {"port": port, "other": ports[port]})
            valid = False
        elif port:
            ports[port] = row.get_service_display()
    kept: dict[str, int] = {}
    for section in forms["caller_sections"]:
        entries = {(row.ae_title, row.host) for row, removed in section["callers"] if not removed}
        for form in section["formset"].forms:
            if not form.is_valid() or form.is_blank():
                continue
            entry = (form.cleaned_data["ae_title"], form.cleaned_data["host"])
            if entry in entries:
                form.add_error("ae_title", _("Already in this allow list."))
                valid = False
            entries.add(entry)
        kept[section["key"]] = len(entries)
    for section in forms["caller_sections"]:
        form = section["listener_form"]
        if form is None or not form.is_valid() or not form.cleaned_data.get("restrict_callers"):
            continue
        if not kept[section["key"]] + kept[ALL_LISTENERS]:
            form.add_error("restrict_callers", _("The allow list is empty: every association would be rejected. "
                                                 "Add a calling AE title or turn the check off."))
            valid = False
    return valid


def _save(forms: dict) -> bool:
    """Write everything in one transaction; True when the listeners need a restart.

    Raises
    ------
    django.core.exceptions.ValidationError
        A service refused a value (e.g. an entry added meanwhile by someone else).
    """
    from dimse.services import allowed_caller_add, allowed_caller_remove, listener_config_update
    from pacs.services.config import archive_config_update

    restart = bool(forms["removed"])
    with transaction.atomic():
        for row, form in forms["listener_forms"]:
            restart = restart or form.has_changed()
            listener_config_update(service=row.service, **form.cleaned_data)
        for caller_id in sorted(forms["removed"]):
            allowed_caller_remove(caller_id=caller_id)
        for section in forms["caller_sections"]:
            for entry in _new_callers(section):
                allowed_caller_add(service=section["service"], **entry)
                restart = True
        archive_config_update(**forms["archive_form"].cleaned_data, **forms["web_form"].cleaned_data)
    return restart
