"""manage.py addserver: add a server to the cluster (dissertation §4.2.1)."""

from django.core.management.base import BaseCommand, CommandError

from nodes.catchup_progress import CatchupWatcher
from nodes.client import ClientError
from nodes.membership_client import (
    ADD_TIMEOUT_S,
    MembershipClient,
    describe_change,
    full_address,
)

from .clientcommand import add_server_arguments


class Command(BaseCommand):
    help = (
        "Add a server to the cluster. It joins as a learner, receives the log, "
        "and becomes a voter once caught up (progress on stderr each second: the "
        "snapshot transfer, then the log); exits 0 once that configuration is "
        "committed. Start the new server first with --cluster naming the "
        "existing members (not itself), so it waits as a non-member."
    )
    # A client of a remote node: this project's checks say nothing about it.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("address", help="the server to add, host:port or :port")
        add_server_arguments(parser, default_timeout_s=ADD_TIMEOUT_S)

    def handle(self, *args, **options):
        try:
            address = full_address(options["address"])
            # Progress lines go to stderr: stdout keeps the one result line.
            with (
                MembershipClient(options["server"], options["timeout"]) as client,
                CatchupWatcher(client.server, address, self.stderr.write),
            ):
                change = client.add_server(address)
        except ClientError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(describe_change(change, "Added"))
