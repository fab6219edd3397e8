"""``python manage.py nodes``: provision remote DICOM nodes from scripts.

    nodes add --ae ORTHANC --host 10.0.0.5 --port 4242 --roles move,store,query,print
    nodes list
    nodes remove --ae ORTHANC
    nodes verify --ae ORTHANC        (C-ECHO; exit status 1 when it fails)

``add`` on an existing AE title updates it.  Roles: store (store destination),
query (query/retrieve source), move (move destination), print (printer).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from dimse.models import RemoteNode

ROLE_FIELDS = {
    "store": "is_store_destination",
    "query": "is_query_source",
    "move": "is_move_destination",
    "print": "is_printer",
}


def _roles(value: str) -> dict[str, bool]:
    wanted = {r.strip().lower() for r in value.split(",") if r.strip()}
    unknown = wanted - set(ROLE_FIELDS)
    if unknown:
        raise CommandError(f"Unknown role(s) {', '.join(sorted(unknown))}; use {', '.join(ROLE_FIELDS)}.")
    return {field: role in wanted for role, field in ROLE_FIELDS.items()}


class Command(BaseCommand):
    help = "Add, list, remove and verify remote DICOM nodes."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="Add or update a node.")
        add.add_argument("--ae", required=True, help="AE title of the node.")
        add.add_argument("--host", required=True)
        add.add_argument("--port", required=True, type=int)
        add.add_argument("--roles", default="store,move", help="Comma-separated: store,query,move,print.")
        add.add_argument("--description", default="")
        add.add_argument("--calling-aet", default="", help="Our calling AE title towards it (default: ours).")
        add.add_argument("--transfer-syntax", default="", help="Preferred transfer syntax UID.")
        add.add_argument("--charset", default="", help="Charset override for what it sends (e.g. GB18030).")
        add.add_argument("--disabled", action="store_true")
        sub.add_parser("list", help="List the nodes.")
        remove = sub.add_parser("remove", help="Remove a node.")
        remove.add_argument("--ae", required=True)
        verify = sub.add_parser("verify", help="C-ECHO a node.")
        verify.add_argument("--ae", required=True)

    def handle(self, *args, **options) -> None:
        getattr(self, f"_{options['action']}")(options)

    def _add(self, options) -> None:
        ae_title = options["ae"].strip()
        node = RemoteNode.objects.filter(ae_title=ae_title).first() or RemoteNode(ae_title=ae_title)
        node.host = options["host"]
        node.port = options["port"]
        node.description = options["description"] or node.description
        node.calling_aet = options["calling_aet"]
        node.preferred_transfer_syntax = options["transfer_syntax"]
        node.charset_override = options["charset"]
        node.enabled = not options["disabled"]
        for field, value in _roles(options["roles"]).items():
            setattr(node, field, value)
        created = node.pk is None
        try:
            node.full_clean()
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        node.save()
        self.stdout.write(f"{'Added' if created else 'Updated'} {node}")

    def _list(self, options) -> None:
        for node in RemoteNode.objects.all():
            roles = ",".join(role for role, field in ROLE_FIELDS.items() if getattr(node, field)) or "-"
            state = "enabled" if node.enabled else "disabled"
            self.stdout.write(f"{node.ae_title:<16} {node.host}:{node.port:<6} roles={roles} {state}"
                              f"{'  ' + node.description if node.description else ''}")

    def _remove(self, options) -> None:
        deleted, _ = RemoteNode.objects.filter(ae_title=options["ae"].strip()).delete()
        if not deleted:
            raise CommandError(f"No node with AE title {options['ae']!r}.")
        self.stdout.write(f"Removed {options['ae']}")

    def _verify(self, options) -> None:
        from dimse.scu import node_verify

        node = RemoteNode.objects.filter(ae_title=options["ae"].strip()).first()
        if node is None:
            raise CommandError(f"No node with AE title {options['ae']!r}.")
        result = node_verify(node=node)
        if not result.ok:
            raise CommandError(f"{node}: {result.message}")
        self.stdout.write(f"{node}: {result.message} ({result.ms:.0f} ms)")
