"""manage.py removeserver: remove a server from the cluster (§4.2.2)."""

from django.core.management.base import BaseCommand, CommandError

from nodes.client import ClientError
from nodes.membership_client import (
    REMOVE_TIMEOUT_S,
    MembershipClient,
    describe_change,
)

from .clientcommand import add_server_arguments, connection_options


class Command(BaseCommand):
    help = (
        "Remove a server from the cluster; exits 0 once the configuration "
        "without it is committed. Removing the leader hands leadership to "
        "another voter first."
    )
    # A client of a remote node: this project's checks say nothing about it.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("address", help="the server to remove, host:port or :port")
        add_server_arguments(parser, default_timeout_s=REMOVE_TIMEOUT_S)

    def handle(self, *args, **options):
        try:
            with MembershipClient(
                options["server"], options["timeout"], **connection_options(options)
            ) as client:
                change = client.remove_server(options["address"])
        except ClientError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(describe_change(change, "Removed"))
