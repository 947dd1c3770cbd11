"""manage.py backup: a consistent copy of a server's applied state at a
committed index (a snapshot taken now), checked against its sha256 (issue
13). ``manage.py restore`` seeds a new cluster from it."""

import hashlib
import os
import sys
import time
from pathlib import Path

import requests
from django.core.management.base import BaseCommand, CommandError

from nodes.client import ClientError, RaftClient
from nodes.transfer_rate import TransferRate, rate_and_eta

from .clientcommand import add_server_arguments, connection_options

CHUNK = 1 << 20
MB = 2**20


def progress_line(meter: TransferRate) -> str:
    """``backup: 12.5 of 50.0 MB (25%), 4.2 MB/s, 9 s left`` (without a
    size, only what was received and the rate)."""
    done = f"backup: {meter.done / MB:.1f}"
    if meter.total:
        done += (
            f" of {meter.total / MB:.1f} MB ({100 * meter.done // meter.total:.0f}%)"
        )
    else:
        done += " MB"
    return done + rate_and_eta(meter, "MB", MB)


class Command(BaseCommand):
    help = (
        "Back up the applied state of the server named by -S (a snapshot it "
        "takes now, at an index it has committed) to --out, checked against "
        "the server's sha256. Needs the admin permission where tokens are "
        "required. On a terminal (or with --progress) shows MB, rate and time left."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, metavar="FILE")
        parser.add_argument(
            "--progress",
            action="store_true",
            default=None,
            help="show progress on stderr (default: on a terminal)",
        )
        add_server_arguments(parser, default_timeout_s=300.0)

    def handle(self, *args, **options):
        out = Path(options["out"]).expanduser()
        if out.exists():
            raise CommandError(f"{out} exists: give another --out")
        progress = options["progress"]
        if progress is None:
            progress = self.stderr.isatty()
        try:
            with RaftClient(
                options["server"], options["timeout"], **connection_options(options)
            ) as client:
                self._download(client, out, options["timeout"], progress)
        except ClientError as exc:
            raise CommandError(str(exc)) from None

    def _download(self, client, out: Path, timeout_s: float, progress: bool):
        response = client.stream("/api/backup", timeout_s)
        with response:
            size = int(response.headers.get("Content-Length", "0"))
            expected = response.headers.get("X-Raft-Snapshot-Sha256", "")
            index = response.headers.get("X-Raft-Snapshot-Index", "?")
            term = response.headers.get("X-Raft-Snapshot-Term", "?")
            partial = out.with_name(out.name + ".part")
            digest, received = hashlib.sha256(), 0
            meter, shown, width = TransferRate(), 0.0, 0
            meter.add(time.monotonic(), 0, size or None)
            try:
                with open(partial, "wb") as f:
                    for chunk in response.iter_content(CHUNK):
                        f.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        now = time.monotonic()
                        meter.add(now, received, size or None)
                        if progress and now - shown >= 1:
                            shown = now
                            width = self._show(progress_line(meter), width)
                    f.flush()
                    os.fsync(f.fileno())
            except (OSError, requests.RequestException) as exc:
                partial.unlink(missing_ok=True)
                raise ClientError(f"the backup did not complete: {exc}") from None
            if progress:
                self._show(progress_line(meter), width)
                sys.stderr.write("\n")
            if received != size or digest.hexdigest() != expected:
                partial.unlink(missing_ok=True)
                raise ClientError(
                    f"the backup does not match the server's sha256 or size "
                    f"({received} of {size} bytes); nothing was written"
                )
            os.rename(partial, out)
        self.stdout.write(
            f"Backed up the applied state at index {index} (term {term}) from "
            f"{client.server}: {size} bytes, sha256 {expected}, to {out}"
        )

    @staticmethod
    def _show(line: str, width: int) -> int:
        """Write ``line`` over the previous one (``width`` characters)."""
        sys.stderr.write("\r" + line.ljust(width))
        sys.stderr.flush()
        return len(line)
