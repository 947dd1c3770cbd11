"""Schemathesis hooks for tests/cluster/test_schema.py (SCHEMATHESIS_HOOKS):
the run keeps its own admin, and a watch waits at most WATCH_TIMEOUT_S."""

import os

import schemathesis

# GET /api/watch may wait up to 60 s for a change; the schema allows it, the
# run has no time for it.
WATCH_TIMEOUT_S = 0.5


def _own_admin() -> tuple[str, str]:
    """The run's admin user and its token's id (raft_<id>_<secret>)."""
    token = os.environ.get("RAFT_SCHEMA_TOKEN", "")
    parts = token.split("_")
    return os.environ.get("RAFT_SCHEMA_ADMIN", ""), parts[1] if len(parts) > 2 else ""


@schemathesis.hook
def before_call(context, case, kwargs):
    # Stateful runs follow links from GET /api/users to PATCH or DELETE
    # /api/users/<username>, POST /api/tokens (which sets the user's
    # permissions) and DELETE /api/tokens/<token_id>: the run's own admin
    # would lose its token or permissions, and every later call get a 401.
    username, token_id = _own_admin()
    path_parameters = case.path_parameters or {}
    if username and path_parameters.get("username") == username:
        path_parameters["username"] = f"not-{username}"
    if (
        username
        and isinstance(case.body, dict)
        and case.body.get("username") == username
    ):
        case.body["username"] = f"not-{username}"
    if token_id and path_parameters.get("token_id") == token_id:
        path_parameters["token_id"] = f"not-{token_id}"
    if case.operation.path == "/api/watch":
        case.query = _short_watch(case.query)


def _short_watch(query):
    """The watch's query with a timeout of at most WATCH_TIMEOUT_S (absent:
    the default, 30 s); a timeout that is no number stays, for a 400."""
    query = dict(query) if isinstance(query, dict) else {}
    try:
        too_long = float(query.get("timeout", 30)) > WATCH_TIMEOUT_S
    except (TypeError, ValueError):
        too_long = False
    if too_long:
        query["timeout"] = WATCH_TIMEOUT_S
    return query
