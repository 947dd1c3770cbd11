"""manage.py clientcommand: have the cluster commit one client message, or
every line of a file in batches."""

import os
import sys

from django.core.management.base import BaseCommand, CommandError

from nodes.client import (
    DEFAULT_TIMEOUT_S,
    ClientError,
    RaftClient,
    describe_batch,
    describe_commit,
)
from nodes.serializers import MAX_BATCH_BYTES, MAX_BATCH_COMMANDS


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
        "Send a client message to a server (-m), or every non-empty line of a "
        "file (--file; - for standard input) in batches of up to "
        f"{MAX_BATCH_COMMANDS} commands; a follower forwards them to the leader. "
        "Exits 0 once the cluster has committed them, printing the log indexes."
    )

    def add_arguments(self, parser):
        given = parser.add_mutually_exclusive_group(required=True)
        given.add_argument("-m", "--message", help="the client message to commit")
        given.add_argument(
            "--file",
            metavar="FILE",
            help="commit each non-empty line of FILE as one command, in order",
        )
        add_server_arguments(parser)

    def handle(self, *args, **options):
        if options["file"] is None:
            return super().handle(*args, **options)
        try:
            batches = list(_batches(_lines(options["file"])))
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {options['file']}: {exc}") from None
        if not batches:
            raise CommandError(f"{options['file']} has no command (no non-empty line)")
        try:
            with RaftClient(
                options["server"], options["timeout"], **connection_options(options)
            ) as client:
                for batch in batches:
                    self.stdout.write(describe_batch(client.submit_batch(batch)))
        except ClientError as exc:
            raise CommandError(str(exc)) from None


def _lines(path: str) -> list[str]:
    if path == "-":
        text = sys.stdin.read()
    else:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    return [line for line in text.splitlines() if line.strip()]


def _batches(lines: list[str]):
    """Runs of lines within the API's batch bounds, in order."""
    batch, size = [], 0
    for line in lines:
        length = len(line.encode("utf-8"))
        if batch and (
            len(batch) == MAX_BATCH_COMMANDS or size + length > MAX_BATCH_BYTES
        ):
            yield batch
            batch, size = [], 0
        batch.append(line)
        size += length
    if batch:
        yield batch
