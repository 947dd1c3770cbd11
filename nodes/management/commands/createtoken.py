"""manage.py createtoken: a new API token for a user of the cluster (issue 10;
CONTRACT.md, Security settings)."""

from django.core.management.base import BaseCommand, CommandError

from consensus import access
from nodes.client import ClientError
from nodes.membership_client import MembershipClient

from .clientcommand import add_server_arguments, connection_options


class Command(BaseCommand):
    help = (
        "Create an API token for a user of the cluster (the user is made if "
        "new, and given exactly these permissions). Needs an admin token "
        "(--token or RAFT_TOKEN), except on the node's own machine while the "
        "cluster has no admin user yet. Prints the token alone on the last "
        "line; it is shown only this once."
    )
    # A client of a remote node: this project's checks say nothing about it.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--username", required=True, help="the user's name")
        parser.add_argument(
            "--permissions",
            required=True,
            metavar="LIST",
            help="comma-separated, of read (the log, key-value reads), write "
            "(commands, key-value writes) and admin (servers, leadership, users)",
        )
        add_server_arguments(parser)

    def handle(self, *args, **options):
        try:
            username = access.check_username(options["username"])
            permissions = access.parse_permissions(options["permissions"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        try:
            with MembershipClient(
                options["server"], options["timeout"], **connection_options(options)
            ) as client:
                answer = client.create_token(username, list(permissions))
        except ClientError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Created token {answer.get('token_id')} for {username} "
            f"({', '.join(permissions)}) at index {answer.get('index')}; "
            "it is shown only this once:"
        )
        self.stdout.write(answer["token"])
