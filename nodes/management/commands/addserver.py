"""manage.py addserver: add a server to the cluster (dissertation §4.2.1)."""

import argparse

from django.core.management.base import BaseCommand, CommandError

from nodes.catchup_progress import CatchupWatcher
from nodes.client import ClientError
from nodes.membership_client import (
    ADD_TIMEOUT_S,
    MembershipClient,
    describe_change,
    full_address,
)

from .clientcommand import add_server_arguments, connection_options


class Command(BaseCommand):
    help = (
        "Add a server to the cluster. It joins as a learner, receives the log, "
        "and becomes a voter once caught up (on a terminal, or with --progress, "
        "its progress on stderr each second: the snapshot transfer, then the "
        "log, with the rate and time left); exits 0 once that configuration is "
        "committed. Start the new server first with --cluster naming the "
        "existing members (not itself), so it waits as a non-member."
    )
    # A client of a remote node: this project's checks say nothing about it.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("address", help="the server to add, host:port or :port")
        add_server_arguments(parser, default_timeout_s=ADD_TIMEOUT_S)
        parser.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="show the catch-up's progress on stderr (default: on a terminal)",
        )

    def handle(self, *args, **options):
        try:
            address = full_address(options["address"])
            progress = options["progress"]
            if progress is None:
                progress = self.stderr.isatty()
            with MembershipClient(
                options["server"], options["timeout"], **connection_options(options)
            ) as client:
                if not progress:
                    change = client.add_server(address)
                else:
                    # On stderr: stdout keeps the one result line.
                    with CatchupWatcher(
                        client.server,
                        address,
                        self.stderr.write,
                        client.ca,
                        client.token,
                    ):
                        change = client.add_server(address)
        except ClientError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(describe_change(change, "Added"))
