"""A follower that only receives snapshots, for bench/snapshots.py
--gunicorn: the project's WSGI application with a stand-in runtime whose
receiver writes into $RAFT_DATA_DIR/snapshots."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "raftsite.settings")

from django.apps import apps  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()

from consensus.snapshots import SnapshotStore  # noqa: E402
from tests.consensus.snapshots.loopback import FollowerRuntime  # noqa: E402

apps.get_app_config("consensus").runtime = FollowerRuntime(
    SnapshotStore(os.environ["RAFT_DATA_DIR"])
)
