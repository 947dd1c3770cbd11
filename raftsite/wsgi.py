"""WSGI entry point; gunicorn serves it (see raftsite/gunicorn_conf.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "raftsite.settings")

application = get_wsgi_application()

from django.conf import settings  # noqa: E402 - configured by the line above

from consensus.metrics import CLIENT_REQUESTS  # noqa: E402

from .client_limit import ClientRequestLimit  # noqa: E402

application = ClientRequestLimit(
    application, settings.RAFT_MAX_CLIENT_REQUESTS, in_flight=CLIENT_REQUESTS
)
