"""manage.py clientcommand: have the cluster commit one client message."""

import os

from django.core.management.base import BaseCommand, CommandError

from nodes.client import DEFAULT_TIMEOUT_S, ClientError, RaftClient, describe_commit


def add_server_arguments(parser, default_timeout_s=DEFAULT_TIMEOUT_S):
    """-S/--server, --timeout, --ca and --token, shared by the client
    commands."""
    parser.add_argument(
        "-S",
        "--server",
        required=True,
        help="the server to ask, host:port or :port (127.0.0.1:port)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=default_timeout_s,
        metavar="SECONDS",
        help=(
            "give up after this long, retries included "
            f"(default {default_timeout_s:g})"
        ),
    )
    parser.add_argument(
        "--ca",
        metavar="FILE",
        default=os.environ.get("RAFT_CA") or None,
        help="the cluster's CA certificate: speak HTTPS to the server and verify "
        "its certificate against it (default $RAFT_CA; without it, plain HTTP)",
    )
    parser.add_argument(
        "--token",
        metavar="TOKEN",
        default=os.environ.get("RAFT_TOKEN") or None,
        help="the API token to send (default $RAFT_TOKEN; manage.py createtoken "
        "makes one); a cluster open to anyone needs none",
    )


def connection_options(options) -> dict:
    """The client keyword arguments the options above give."""
    return {"ca": options["ca"], "token": options["token"]}


class SubmitCommand(BaseCommand):
    """Commits ``command_text``, or the -m message when that is None."""

    # A client of a remote node: this project's checks say nothing about it.
    requires_system_checks = []
    command_text = None

    def add_arguments(self, parser):
        if self.command_text is None:
            parser.add_argument(
                "-m", "--message", required=True, help="the client message to commit"
            )
        add_server_arguments(parser)

    def handle(self, *args, **options):
        command = self.command_text or options["message"]
        try:
            with RaftClient(
                options["server"], options["timeout"], **connection_options(options)
            ) as client:
                commit = client.submit(command)
        except ClientError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(describe_commit(commit))


class Command(SubmitCommand):
    help = (
        "Send a client message to a server; a follower forwards it to the leader. "
        "Exits 0 once the cluster has committed it, printing its log index."
    )
