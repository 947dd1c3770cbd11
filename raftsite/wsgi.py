"""WSGI entry point; gunicorn serves it (see raftsite/gunicorn_conf.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "raftsite.settings")

application = get_wsgi_application()

from django.conf import settings  # noqa: E402 - configured by the line above
from django.core.signals import request_finished, request_started  # noqa: E402
from django.db import close_old_connections, reset_queries  # noqa: E402

# Django checks every database connection of the thread at the start and
# end of each request, to close those past CONN_MAX_AGE or unusable. Ours
# are SQLite, kept for good (settings.DATABASES) and always usable (an
# SQLite connection has no server to lose), so the checks close nothing;
# they were a tenth of a client command's CPU in Django.
request_started.disconnect(close_old_connections)
request_finished.disconnect(close_old_connections)
if not settings.DEBUG:
    request_started.disconnect(reset_queries)  # queries are logged only in DEBUG

from consensus.metrics import CLIENT_REQUEST_SECONDS, CLIENT_REQUESTS  # noqa: E402

from .client_limit import ClientRequestLimit  # noqa: E402
from .direct_routes import DirectRoutes, hot_middleware, hot_routes  # noqa: E402
from .request_metrics import RequestLatency  # noqa: E402

application = ClientRequestLimit(
    DirectRoutes(application, hot_routes(), hot_middleware()),
    settings.RAFT_MAX_CLIENT_REQUESTS,
    in_flight=CLIENT_REQUESTS,
    latency=RequestLatency(CLIENT_REQUEST_SECONDS),
)
