"""What the offline commands (recover, restore) share: the members they are
given, and running again for another node's data directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.core.management.base import CommandError

from consensus.addresses import InvalidAddress, normalise_address


def addresses(text: str, option: str) -> list[str]:
    """The full addresses in ``text`` (comma-separated), sorted, each once;
    CommandError naming ``option`` if one is malformed or none is given."""
    try:
        found = {normalise_address(a) for a in text.split(",") if a.strip()}
    except InvalidAddress as exc:
        raise CommandError(str(exc)) from None
    if not found:
        raise CommandError(f"{option} names no server")
    return sorted(found)


def rerun_for(data_dir: Path, command: str, args: list[str], stdout) -> None:
    """Run ``manage.py <command> <args>`` again with RAFT_DATA_DIR set:
    settings name the database once, at start-up, so another node's
    database needs another process. Its output goes to ``stdout``; its
    failure is this command's, in its own last line."""
    env = dict(os.environ, RAFT_DATA_DIR=str(data_dir))
    manage = Path(__file__).resolve().parents[2] / "manage.py"
    argv = [sys.executable, str(manage), command, *args]
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    stdout.write(done.stdout, ending="")
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"{command} failed"]
        raise CommandError(lines[-1].removeprefix("CommandError: "))
