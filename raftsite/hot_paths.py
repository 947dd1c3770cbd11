"""Middleware that client commands, key-value requests and peer RPC skip:
sessions, CSRF, the admin's user and its messages. Every other path runs
them as Django does.

POST /api/commands, /api/kv, /api/watch and /raft/ are DRF views exempt
from CSRF that read no cookie, session, user or message, so skipping
changes none of their answers; the host check (CommonMiddleware) and the security headers still
run. At 64 clients these four cost about a sixth of the leader's request
handling (MessageMiddleware alone built a cookie signer per request).
"""

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.middleware.csrf import CsrfViewMiddleware

COMMANDS_PATH = "/api/commands"
PEER_PREFIX = "/raft/"
# The key-value store's reads and writes: token-authenticated DRF views
# (exempt from CSRF) that read no session, login or message either.
KV_PREFIXES = ("/api/kv", "/api/watch")


def is_hot(request) -> bool:
    path = request.path_info
    return (
        path == COMMANDS_PATH
        or path.startswith(PEER_PREFIX)
        or path.startswith(KV_PREFIXES)
    )


class _SkippedOnHotPaths:
    def __call__(self, request):
        if is_hot(request):
            return self.get_response(request)
        return super().__call__(request)


# What raftsite/direct_routes.py leaves out of the chain it builds.
SKIPPED_ON_HOT_PATHS = _SkippedOnHotPaths


class HotPathSessionMiddleware(_SkippedOnHotPaths, SessionMiddleware):
    pass


class HotPathAuthenticationMiddleware(_SkippedOnHotPaths, AuthenticationMiddleware):
    pass


class HotPathMessageMiddleware(_SkippedOnHotPaths, MessageMiddleware):
    pass


class HotPathCsrfViewMiddleware(_SkippedOnHotPaths, CsrfViewMiddleware):
    def process_view(self, request, callback, callback_args, callback_kwargs):
        if is_hot(request):
            return None
        return super().process_view(request, callback, callback_args, callback_kwargs)
