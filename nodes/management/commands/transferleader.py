"""manage.py transferleader: hand leadership over (dissertation §3.10)."""

from django.core.management.base import BaseCommand, CommandError

from nodes.client import ClientError
from nodes.membership_client import (
    TRANSFER_TIMEOUT_S,
    MembershipClient,
    describe_transfer,
)

from .clientcommand import add_server_arguments, connection_options


class Command(BaseCommand):
    help = (
        "Hand leadership to another voter (--to), or to the most up-to-date "
        "follower; exits 0 once leadership has moved, naming the new leader."
    )
    # A client of a remote node: this project's checks say nothing about it.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--to",
            metavar="ADDRESS",
            help="the voter to hand leadership to (default: the most up-to-date)",
        )
        add_server_arguments(parser, default_timeout_s=TRANSFER_TIMEOUT_S)

    def handle(self, *args, **options):
        try:
            with MembershipClient(
                options["server"], options["timeout"], **connection_options(options)
            ) as client:
                transfer = client.transfer_leader(options["to"])
        except ClientError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(describe_transfer(transfer))
