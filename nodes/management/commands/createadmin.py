"""``manage.py createadmin``: create or reset an admin login on one node.

Logins are local to a node (its accounts database, beside the Raft one in
its data directory), not replicated: run this once per node. Safe to run
while the node serves, and again later: it never opens the Raft database.
"""

import os
import secrets
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import router, transaction

from raftsite.routers import ACCOUNTS_DB
from raftsite.security import private_data_dir


def ensure_admin(username: str, password: str) -> bool:
    """Make ``username`` an active superuser with ``password``; return
    whether the account is new."""
    User = get_user_model()
    with transaction.atomic(using=router.db_for_write(User)):
        user, created = User.objects.get_or_create(username=username)
        user.is_active = user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
    return created


class Command(BaseCommand):
    help = (
        "Create an admin login (a superuser) on one node, or reset its "
        "password. Name the node by --data-dir, or by --port (and --host) as "
        "given to runnode. Without --password a random one is made and printed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--data-dir", help="the node's data directory")
        parser.add_argument("-p", "--port", type=int, help="the node's port")
        parser.add_argument("--host", default="127.0.0.1", help="the node's host")
        parser.add_argument("--username", default="admin")
        parser.add_argument(
            "--password",
            help="default: $RAFT_ADMIN_PASSWORD, else a random one (printed)",
        )

    def handle(self, *args, **options):
        data_dir = self._data_dir(options)
        username = options["username"]
        if not username.strip():
            raise CommandError("--username must not be empty")
        password = options["password"] or os.environ.get("RAFT_ADMIN_PASSWORD")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(9)
        else:
            # settings.AUTH_PASSWORD_VALIDATORS, as the admin's own forms.
            try:
                validate_password(password, get_user_model()(username=username))
            except ValidationError as exc:
                raise CommandError(
                    "password refused: " + " ".join(exc.messages)
                ) from None
        if data_dir == Path(settings.RAFT_DATA_DIR).resolve():
            self._create_here(data_dir, username, password)
        else:
            self._in_child(data_dir, username, password)
        if generated:
            self.stdout.write(f"Password: {password}")

    def _create_here(self, data_dir: Path, username: str, password: str) -> None:
        # As runnode: the directory and the files made in it for the owner
        # only.
        try:
            warning = private_data_dir(data_dir)
        except OSError as exc:
            raise CommandError(
                f"cannot create data directory {data_dir}: {exc.strerror or exc}"
            ) from None
        if warning:
            self.stderr.write(warning)
        # The node migrates when it starts; doing it here lets a login be
        # made before the node's first start.
        umask = os.umask(0o077)
        try:
            call_command(
                "migrate", database=ACCOUNTS_DB, verbosity=0, interactive=False
            )
            created = ensure_admin(username, password)
        finally:
            os.umask(umask)
        verb = "Created" if created else "Reset the password of"
        self.stdout.write(
            f"{verb} the admin login {username!r} on {data_dir} "
            "(logins are local to this node)"
        )

    def _data_dir(self, options) -> Path:
        if options["data_dir"]:
            return Path(options["data_dir"]).expanduser().resolve()
        if options["port"]:
            # The same default as runnode's --data-dir.
            name = f"{options['host']}_{options['port']}"
            return (Path.home() / ".raftsite" / name).resolve()
        if os.environ.get("RAFT_DATA_DIR"):
            return Path(settings.RAFT_DATA_DIR).resolve()
        raise CommandError(
            "say which node: --data-dir DIR, or --port PORT as given to runnode"
        )

    def _in_child(self, data_dir: Path, username: str, password: str) -> None:
        """Run again with RAFT_DATA_DIR set: settings name the database once,
        at start-up, so another node's database needs another process."""
        env = dict(os.environ, RAFT_DATA_DIR=str(data_dir))
        manage = Path(__file__).resolve().parents[3] / "manage.py"
        argv = [sys.executable, str(manage), "createadmin", "--username", username]
        # The password goes by the environment, not argv: ps shows argv.
        env["RAFT_ADMIN_PASSWORD"] = password
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        self.stdout.write(done.stdout, ending="")
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or ["createadmin failed"]
            raise CommandError(lines[-1])
