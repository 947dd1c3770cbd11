"""The hot paths from WSGI straight to their views, through only the
middleware they need.

Every client command is a POST /api/commands on the leader and every
AppendEntries a POST /raft/append_entries on a follower. Django's handler
would resolve the URL and run each through the whole middleware chain, in
which hot_paths.py's wrappers then skip the session, CSRF, login and
messages. Here each of these paths is resolved once, at start-up, and
served by the rest of the chain alone (Django's own middleware classes,
composed as Django composes them: security headers, the host check and
Content-Length, X-Frame-Options), every layer's exceptions answered as
Django answers them. The views, their DRF authentication, parsing, errors
and rendering are unchanged. In process, a one-entry AppendEntries took
196 -> 110 us of CPU; tests/consensus/test_direct_routes.py holds the
answers to the whole stack's.

The key-value store's paths take the same route: /api/kv/<key> is
resolved per request against its own pattern alone (Django's resolver
would try every pattern before it, and list each one it tried: a tenth of
a follower's CPU under key reads). Other paths go to Django as before.
"""

from __future__ import annotations

from django.conf import settings
from django.core import signals
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.urls import Resolver404, resolve
from django.urls.resolvers import RegexPattern, URLResolver
from django.utils.module_loading import import_string

from .hot_paths import SKIPPED_ON_HOT_PATHS


def hot_routes() -> list[str]:
    """The exact paths served directly: client commands, the key-value
    store's list and watch, and peer RPC."""
    from consensus.urls import urlpatterns as peer_patterns

    return ["/api/commands", "/api/kv", "/api/watch"] + [
        f"/raft/{p.pattern}" for p in peer_patterns
    ]


def key_resolver() -> URLResolver:
    """Resolves /api/kv/<key> with the key's own route (nodes.urls, "key")."""
    from nodes.urls import urlpatterns

    key = next(p for p in urlpatterns if getattr(p, "name", None) == "key")
    return URLResolver(RegexPattern(r"^/api/"), [key])


# Paths under this prefix are resolved per request (a key is in the path).
KEY_PREFIX = "/api/kv/"


def hot_middleware() -> list[type]:
    """settings.MIDDLEWARE without what hot paths skip, in order."""
    classes = [import_string(name) for name in settings.MIDDLEWARE]
    return [cls for cls in classes if not issubclass(cls, SKIPPED_ON_HOT_PATHS)]


class DirectRoutes:
    def __init__(self, application, paths: list[str], middleware: list[type]):
        self._application = application
        self._middleware = middleware
        self._key_resolver = key_resolver()
        # View function -> its chain, built once.
        self._chains = {}
        self._routes = {path: self._route(resolve(path)) for path in paths}

    def _route(self, match):
        chain = self._chains.get(match.func)
        if chain is None:
            chain = self._chains[match.func] = _chain(match.func, self._middleware)
        return match, chain

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        route = self._routes.get(path)
        if route is None and not path.startswith(KEY_PREFIX):
            return self._application(environ, start_response)
        request = WSGIRequest(environ)
        if route is None:
            try:
                route = self._route(self._key_resolver.resolve(request.path_info))
            except Resolver404:
                return self._application(environ, start_response)
        match, handler = route
        # The signals Django's handler sends, for any receiver a project
        # connects (raftsite/wsgi.py drops Django's own connection checks).
        signals.request_started.send(sender=WSGIHandler, environ=environ)
        request.resolver_match = match
        response = handler(request)
        response._handler_class = WSGIHandler
        start_response(
            f"{response.status_code} {response.reason_phrase}",
            [
                *response.items(),
                *(
                    ("Set-Cookie", c.output(header=""))
                    for c in response.cookies.values()
                ),
            ],
        )
        # Closing the response sends request_finished (sender WSGIHandler).
        return response


def _chain(view, middleware: list[type]):
    # As django.core.handlers.base.BaseHandler.load_middleware builds it.
    handler = convert_exception_to_response(_rendered(view))
    for cls in reversed(middleware):
        handler = convert_exception_to_response(cls(handler))
    return handler


def _rendered(view):
    def respond(request):
        match = request.resolver_match
        response = view(request, *match.args, **match.kwargs)
        # DRF's Response renders late, before the middleware's answers
        # (BaseHandler._get_response).
        if hasattr(response, "render") and callable(response.render):
            response = response.render()
        return response

    return respond
