"""manage.py kv put|get|del|list|watch: the key-value store through
raftclient.Client, one line per result or one line for an error."""

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from raftclient import CONSISTENCY, Client, PreconditionFailed, RaftError

from .clientcommand import add_server_arguments, connection_options

# The shell's code for a process stopped by SIGINT (as manage.py's).
EXIT_INTERRUPTED = 130


class Command(BaseCommand):
    help = (
        "Put, get, delete, list or watch keys of the cluster's key-value store. "
        "-S may name several servers, comma-separated: the first that answers "
        "serves. A key or value that is not printable text is shown as JSON."
    )
    # A client of a remote node: this project's checks say nothing about it.
    requires_system_checks = []

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        put = actions.add_parser("put", help="set KEY to VALUE")
        put.add_argument("key", metavar="KEY")
        put.add_argument("value", metavar="VALUE")
        _prev_revision(put, "only if the key's revision is N (0: only if absent)")
        get = actions.add_parser("get", help="print KEY's value and revision")
        get.add_argument("key", metavar="KEY")
        _consistency(get)
        delete = actions.add_parser("del", help="delete KEY")
        delete.add_argument("key", metavar="KEY")
        _prev_revision(delete, "only if the key's revision is N")
        listing = actions.add_parser("list", help="print every key under a prefix")
        listing.add_argument("--prefix", default="", metavar="P")
        _consistency(listing)
        watch = actions.add_parser("watch", help="print changes as they come")
        watch.add_argument("--prefix", default="", metavar="P")
        watch.add_argument(
            "--after", type=int, metavar="REV",
            help="changes after this revision (default: from now on)",
        )  # fmt: skip
        watch.add_argument("--count", type=int, metavar="N", help="exit after N events")
        for subparser in (put, get, delete, listing, watch):
            add_server_arguments(subparser)

    def handle(self, *args, **options):
        try:
            with Client(
                options["server"], timeout=options["timeout"],
                **connection_options(options),
            ) as client:  # fmt: skip
                getattr(self, "_" + options["action"])(client, options)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        except RaftError as exc:
            raise CommandError(_describe(exc, options)) from None

    def _put(self, client, options):
        item = client.put(options["key"], options["value"], options["prev_revision"])
        self.stdout.write(f"put {_show(item.key)} revision {item.revision}")

    def _get(self, client, options):
        item = client.get(options["key"], options["consistency"])
        self.stdout.write(
            f"{_show(item.key)} = {_show(item.value)} "
            f"(revision {item.revision}, applied {item.applied_index})"
        )

    def _del(self, client, options):
        revision = client.delete(options["key"], options["prev_revision"])
        self.stdout.write(f"deleted {_show(options['key'])} revision {revision}")

    def _list(self, client, options):
        for item in client.list(options["prefix"], options["consistency"]):
            self.stdout.write(
                f"{_show(item.key)} = {_show(item.value)} (revision {item.revision})"
            )

    def _watch(self, client, options):
        if options["count"] is not None and options["count"] < 1:
            raise CommandError("--count must be at least 1")
        seen = 0
        try:
            for event in client.watch(options["prefix"], options["after"]):
                self.stdout.write(_event_line(event))
                self.stdout.flush()  # a reader of a pipe sees each at once
                seen += 1
                if seen == options["count"]:
                    return
        except KeyboardInterrupt:
            # A watch only reads: nothing "may or may not take effect".
            events = "1 event" if seen == 1 else f"{seen} events"
            sys.stderr.write(f"interrupted: the watch stopped after {events}\n")
            sys.exit(EXIT_INTERRUPTED)


def _prev_revision(parser, words):
    parser.add_argument(
        "--prev-revision", type=int, default=None, metavar="N", help=words
    )


def _consistency(parser):
    parser.add_argument(
        "--consistency", choices=CONSISTENCY, default="linearizable",
        help="linearizable (default), leader, or stale (this server's state)",
    )  # fmt: skip


def _show(text) -> str:
    """``text`` as is, or as JSON when it would not read as one line."""
    if isinstance(text, str) and text.isprintable() and text.strip() == text:
        return text
    return json.dumps(text, ensure_ascii=False)


def _event_line(event) -> str:
    if event.type == "delete":
        return f"delete {_show(event.key)} (revision {event.revision})"
    return f"put {_show(event.key)} = {_show(event.value)} (revision {event.revision})"


def _describe(exc: RaftError, options) -> str:
    """One line naming the error code, e.g. 'precondition failed: ...'."""
    key = _show(options.get("key"))
    if isinstance(exc, PreconditionFailed):
        expected, current = options.get("prev_revision"), exc.current_revision
        if current == 0:
            return (
                f"precondition failed: {key} does not exist (not revision {expected})"
            )
        if expected == 0:
            return f"precondition failed: {key} exists at revision {current}"
        return f"precondition failed: the key's revision is {current} (not {expected})"
    if exc.code == "not_found" and options.get("key") is not None:
        return f"not found: no key {key}"
    if exc.code == "unauthorized" and not options.get("token"):
        return f"{exc} Give --token or set RAFT_TOKEN."
    return str(exc)
