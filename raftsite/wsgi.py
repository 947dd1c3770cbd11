"""WSGI entry point; gunicorn serves it (see raftsite/gunicorn_conf.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "raftsite.settings")

application = get_wsgi_application()
