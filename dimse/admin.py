"""Admin for DICOM network configuration and the association audit trail."""

from django.contrib import admin

from dimse.models import AllowedCaller, AssociationLog, Listener, ListenerCommand, RemoteNode, ScpProcess


class AllowedCallerInline(admin.TabularInline):
    model = AllowedCaller
    extra = 1


@admin.register(Listener)
class ListenerAdmin(admin.ModelAdmin):
    list_display = ("service", "ae_title", "port", "enabled", "require_called_aet", "restrict_callers",
                    "max_associations")
    list_editable = ("enabled",)
    inlines = [AllowedCallerInline]


@admin.register(AllowedCaller)
class AllowedCallerAdmin(admin.ModelAdmin):
    list_display = ("ae_title", "host", "listener", "description")
    search_fields = ("ae_title", "host")
    list_filter = ("listener",)


@admin.register(RemoteNode)
class RemoteNodeAdmin(admin.ModelAdmin):
    list_display = ("ae_title", "host", "port", "is_store_destination", "is_query_source", "is_move_destination",
                    "is_printer", "charset_override", "enabled")
    search_fields = ("ae_title", "host", "description")
    list_filter = ("enabled", "is_store_destination", "is_query_source", "is_move_destination", "is_printer")
    actions = ["verify"]

    @admin.action(description="Verify (C-ECHO) selected nodes")
    def verify(self, request, queryset) -> None:
        from django.contrib import messages

        from dimse.scu import node_verify

        for node in queryset:
            result = node_verify(node=node)
            level = messages.SUCCESS if result.ok else messages.ERROR
            self.message_user(request, f"{node}: {result.message} ({result.ms:.0f} ms)", level)


@admin.register(AssociationLog)
class AssociationLogAdmin(admin.ModelAdmin):
    list_display = ("started_at", "service", "calling_aet", "called_aet", "peer_address", "status",
                    "instances_received", "failures", "ended_at")
    list_filter = ("service", "status", "calling_aet")
    search_fields = ("calling_aet", "called_aet", "peer_address")
    date_hierarchy = "started_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ListenerCommand)
class ListenerCommandAdmin(admin.ModelAdmin):
    list_display = ("id", "action", "service", "created_at", "created_by", "processed_at")
    readonly_fields = ("processed_at", "result", "created_by")

    def save_model(self, request, obj, form, change) -> None:
        from dimse.services import listener_command_issue

        if not change:
            created = listener_command_issue(action=obj.action, service=obj.service, user=request.user)
            obj.pk = created.pk


@admin.register(ScpProcess)
class ScpProcessAdmin(admin.ModelAdmin):
    list_display = ("key", "host", "pid", "started_at", "heartbeat_at")

    def has_add_permission(self, request) -> bool:
        return False
