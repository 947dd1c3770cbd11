"""manage.py status: a short summary of one server's view of the cluster."""

from django.core.management.base import BaseCommand, CommandError

from nodes.client import ClientError, RaftClient, describe_status

from .clientcommand import add_server_arguments, connection_options


class Command(BaseCommand):
    help = (
        "Show a server's id, role, term, leader, commit index, last applied, "
        "last log index and the servers it knows (voter or learner)."
    )
    # A client of a remote node: this project's checks say nothing about it.
    requires_system_checks = []

    def add_arguments(self, parser):
        add_server_arguments(parser)

    def handle(self, *args, **options):
        try:
            with RaftClient(
                options["server"], options["timeout"], **connection_options(options)
            ) as client:
                status = client.status()
        except ClientError as exc:
            raise CommandError(str(exc)) from None
        for line in describe_status(status):
            self.stdout.write(line)
