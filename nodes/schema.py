"""The OpenAPI description of the client API (GET /api/schema/, drf-spectacular):
the answers' shapes and, per operation, its statuses; the views stay as they are.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
)
from drf_spectacular.views import (
    SpectacularAPIView,
    SpectacularRedocView,
    SpectacularSwaggerView,
)

from consensus import access

from . import (
    app_views,
    backup_views,
    health,
    kv_views,
    membership_views,
    token_views,
    views,
)
from .schema_answers import (
    AppReadSerializer,
    BatchAnswerSerializer,
    ChangeAnswerSerializer,
    CommandAnswerSerializer,
    ErrorSerializer,
    EventsSerializer,
    KeyDeletedSerializer,
    KeyNotFoundErrorSerializer,
    KeysPageSerializer,
    KeyValueSerializer,
    KeyValueWrittenSerializer,
    LeaderAnswerSerializer,
    LiveSerializer,
    LogPageSerializer,
    NoLeaderErrorSerializer,
    PermissionsAnswerSerializer,
    PermissionsRequestSerializer,
    PreconditionFailedErrorSerializer,
    ReadySerializer,
    TokenAnswerSerializer,
    TokenRequestSerializer,
    TokenRevokedSerializer,
    UserDeletedSerializer,
    UsersSerializer,
)
from .schema_limits import (
    KEY,
    PREV_REVISION_QUERY,
    SESSION_QUERY,
    AppRequestSerializer,
    AppSessionRequestSerializer,
    BatchBodySerializer,
    BatchSessionBodySerializer,
    CommandBodySerializer,
    CommandSessionBodySerializer,
    PutRequestSerializer,
    PutSessionRequestSerializer,
    address_parameter,
    state_part_parameter,
)
from .serializers import (
    AddServerSerializer,
    LogQuerySerializer,
    NodeStatusSerializer,
    ServersSerializer,
    TransferLeaderSerializer,
)

# --- statuses -------------------------------------------------------------------

# Status -> (answer, what it means). 400, 401, 403, 406 and 503 overloaded
# may come from any client operation: add_common_answers adds them.
ERRORS = {
    400: (ErrorSerializer, "bad_request: malformed; nothing was changed."),
    404: (ErrorSerializer, "not_found: no such server, key, user or token."),
    409: (
        ErrorSerializer,
        "conflict: a change is already in progress, or a retried "
        "(client_id, seq) whose session has ended; nothing was changed.",
    ),
    410: (ErrorSerializer, "compacted: that history is no longer kept."),
    412: (
        PreconditionFailedErrorSerializer,
        "precondition_failed: the key's revision is not prev_revision "
        "(current_revision says what it is); nothing was changed.",
    ),
    413: (ErrorSerializer, "too_large: a command or value over its limit."),
    422: (
        ErrorSerializer,
        "catchup_failed: the server to add did not catch up (or is no peer); "
        "the configuration is unchanged.",
    ),
    503: (
        NoLeaderErrorSerializer,
        "no_leader: no leader is known now (or the node is starting); nothing "
        "was appended, retry after Retry-After. overloaded: too many client "
        "requests in flight.",
    ),
    504: (
        NoLeaderErrorSerializer,
        "timeout: the outcome is unknown; the write may or may not commit.",
    ),
}


def error(status_code: int, serializer=None, description=None) -> OpenApiResponse:
    default_serializer, default_description = ERRORS[status_code]
    return OpenApiResponse(
        serializer or default_serializer,
        description=description or default_description,
    )


def answers(ok, *statuses: int, **special) -> dict:
    """responses= for extend_schema: 200 ``ok`` and the error statuses
    (``special``: "s404"=OpenApiResponse to replace the usual one)."""
    responses = {200: ok}
    for status_code in statuses:
        responses[status_code] = special.get(f"s{status_code}") or error(status_code)
    return responses


WRITE_ERRORS = (400, 409, 503, 504)
CONSISTENCY = OpenApiParameter(
    "consistency",
    str,
    enum=list(kv_views.CONSISTENCY),
    description="linearizable (default), leader or stale.",
)
USERNAME = OpenApiParameter(
    "username",
    str,
    OpenApiParameter.PATH,
    pattern=f"^{access.USERNAME.pattern}$",
    description="1 to 150 letters, digits and _ . @ + - (ASCII).",
)
STATE_PART = state_part_parameter()
TOKEN_ID = OpenApiParameter(
    "token_id",
    str,
    OpenApiParameter.PATH,
    pattern=f"^{access.TOKEN_ID.pattern}$",
    description="12 hex digits: the middle of raft_<token_id>_<secret>.",
)

COMMAND_REQUEST = PolymorphicProxySerializer(
    component_name="Commands",
    serializers=[
        CommandBodySerializer,
        CommandSessionBodySerializer,
        BatchBodySerializer,
        BatchSessionBodySerializer,
    ],
    resource_type_field_name=None,
)
# anyOf, not oneOf: a body with the pair matches both (finish_schema).
KEY_PUT_REQUEST = PolymorphicProxySerializer(
    component_name="KeyPut",
    serializers=[PutRequestSerializer, PutSessionRequestSerializer],
    resource_type_field_name=None,
)
APP_REQUEST = PolymorphicProxySerializer(
    component_name="AppWrite",
    serializers=[AppRequestSerializer, AppSessionRequestSerializer],
    resource_type_field_name=None,
)
COMMAND_ANSWER = PolymorphicProxySerializer(
    component_name="CommandsAnswer",
    serializers=[CommandAnswerSerializer, BatchAnswerSerializer],
    resource_type_field_name=None,
)

BACKUP_FILE = OpenApiResponse(
    response={"type": "string", "format": "binary"},
    description=(
        "The snapshot's SQLite database; X-Raft-Snapshot-Index, -Term and "
        "-Sha256 headers name it (manage.py backup checks them)."
    ),
)

OPERATIONS = {
    backup_views.BackupView: {
        "get": extend_schema(
            summary="Back up the applied state: a snapshot taken now",
            responses={
                (200, "application/vnd.sqlite3"): BACKUP_FILE,
                409: error(409),
                503: error(503),
                504: error(504),
            },
            tags=["backup"],
        )
    },
    views.StatusView: {
        "get": extend_schema(
            summary="This node's view of the cluster",
            responses=answers(NodeStatusSerializer, 503),
        )
    },
    health.LiveView: {
        "get": extend_schema(
            summary="Liveness: the process serves requests",
            responses={200: LiveSerializer},
            tags=["health"],
        )
    },
    health.ReadyView: {
        "get": extend_schema(
            summary="Readiness: a member that knows a leader and has applied "
            "what it knows committed",
            responses=answers(
                ReadySerializer,
                503,
                s503=error(503, ErrorSerializer, "not_ready, with the reason."),
            ),
            tags=["health"],
        )
    },
    views.CommandsView: {
        "post": extend_schema(
            summary="Commit a command (or a batch of them)",
            request=COMMAND_REQUEST,
            responses=answers(COMMAND_ANSWER, *WRITE_ERRORS, 413),
        )
    },
    views.LogView: {
        "get": extend_schema(
            summary="A page of committed entries",
            parameters=[LogQuerySerializer],
            responses=answers(LogPageSerializer, 400, 503),
        )
    },
    membership_views.ServersView: {
        "get": extend_schema(
            summary="The configuration",
            responses=answers(ServersSerializer, 503),
            tags=["servers"],
        ),
        "post": extend_schema(
            summary="Add a server (it catches up first, then votes)",
            request=AddServerSerializer,
            responses=answers(ChangeAnswerSerializer, *WRITE_ERRORS, 404, 422),
            tags=["servers"],
        ),
    },
    membership_views.ServerDetailView: {
        "delete": extend_schema(
            summary="Remove a server",
            parameters=[address_parameter("The server to remove, host:port.")],
            responses=answers(ChangeAnswerSerializer, *WRITE_ERRORS, 404, 422),
            tags=["servers"],
        )
    },
    membership_views.LeaderView: {
        "post": extend_schema(
            summary="Hand leadership over",
            request=TransferLeaderSerializer,
            responses=answers(LeaderAnswerSerializer, *WRITE_ERRORS, 404, 422),
            tags=["servers"],
        )
    },
    token_views.TokensView: {
        "post": extend_schema(
            summary="A new token for a user (made if new), shown once",
            description="Needs an admin token, except from the node's own "
            "machine while the cluster has no admin user (the first one).",
            request=TokenRequestSerializer,
            responses=answers(TokenAnswerSerializer, *WRITE_ERRORS, 404),
            tags=["access"],
        )
    },
    token_views.TokenDetailView: {
        "delete": extend_schema(
            summary="Revoke a token",
            parameters=[TOKEN_ID],
            responses=answers(TokenRevokedSerializer, *WRITE_ERRORS, 404),
            tags=["access"],
        )
    },
    token_views.UsersView: {
        "get": extend_schema(
            summary="The users and their tokens (ids only)",
            responses=answers(UsersSerializer),
            tags=["access"],
        )
    },
    token_views.UserDetailView: {
        "patch": extend_schema(
            summary="Set a user's permissions",
            parameters=[USERNAME],
            request=PermissionsRequestSerializer,
            responses=answers(PermissionsAnswerSerializer, *WRITE_ERRORS, 404),
            tags=["access"],
        ),
        "delete": extend_schema(
            summary="Remove a user and its tokens",
            parameters=[USERNAME],
            responses=answers(UserDeletedSerializer, *WRITE_ERRORS, 404),
            tags=["access"],
        ),
    },
    kv_views.KeysView: {
        "get": extend_schema(
            summary="Keys in byte order",
            operation_id="kv_list",
            parameters=[kv_views.ListSerializer],
            responses=answers(KeysPageSerializer, 400, 503, 504),
            tags=["kv"],
        )
    },
    kv_views.KeyView: {
        "get": extend_schema(
            summary="A key's value",
            parameters=[KEY, kv_views.ReadSerializer],
            responses=answers(
                KeyValueSerializer,
                400,
                404,
                503,
                504,
                s404=error(404, KeyNotFoundErrorSerializer, "not_found: no such key."),
            ),
            tags=["kv"],
        ),
        "put": extend_schema(
            summary="Write a key (compare-and-set with prev_revision)",
            parameters=[KEY],
            request=KEY_PUT_REQUEST,
            responses=answers(KeyValueWrittenSerializer, *WRITE_ERRORS, 412, 413),
            tags=["kv"],
        ),
        "delete": extend_schema(
            summary="Delete a key (compare-and-set with prev_revision)",
            parameters=[KEY, PREV_REVISION_QUERY, SESSION_QUERY],
            responses=answers(KeyDeletedSerializer, *WRITE_ERRORS, 404, 412),
            tags=["kv"],
        ),
    },
    kv_views.WatchView: {
        "get": extend_schema(
            summary="Changes under a prefix after a revision (a long poll)",
            parameters=[kv_views.WatchSerializer],
            responses=answers(EventsSerializer, 400, 410, 503),
            tags=["kv"],
        )
    },
    app_views.AppView: {
        "post": extend_schema(
            summary="Append an entry for a state part",
            parameters=[STATE_PART],
            request=APP_REQUEST,
            responses=answers(CommandAnswerSerializer, *WRITE_ERRORS, 404),
            tags=["apps"],
        ),
        "get": extend_schema(
            summary="A state part's read()",
            description="Other query parameters go to the part's read().",
            parameters=[STATE_PART, CONSISTENCY],
            responses=answers(AppReadSerializer, 400, 404, 503, 504),
            tags=["apps"],
        ),
    },
}


def document_views() -> None:
    """Attach OPERATIONS to the views (nodes/urls.py calls it once)."""
    for view, methods in OPERATIONS.items():
        extend_schema_view(**methods)(view)


# --- the schema as a whole ------------------------------------------------------


class ClusterTokenScheme(OpenApiAuthenticationExtension):
    """``Authorization: Token <token>`` (DRF's token scheme)."""

    target_class = "nodes.auth.ClusterTokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": (
                "`Token <token>` (manage.py createtoken prints one). Needed "
                "with RAFT_AUTH=required and beyond loopback; a loopback node "
                "without it is open, but still checks a token that is given."
            ),
        }


def client_api_only(endpoints):
    """PREPROCESSING_HOOKS: the client API, not /raft/ (peers), the admin,
    the dashboard or the schema's own pages."""
    own = ("/api/schema/", "/api/docs/", "/api/redoc/")
    return [
        endpoint
        for endpoint in endpoints
        if endpoint[0].startswith("/api/") and endpoint[0] not in own
    ]


RETRY_AFTER = {
    "schema": {"type": "integer", "minimum": 0},
    "description": "Seconds to wait before a retry.",
}


def add_common_answers(result, generator, request, public):
    """POSTPROCESSING_HOOKS: what any client operation may answer: 400 (a
    Host this node does not serve), 406 (an Accept it cannot meet), 414 and
    431 (a head over gunicorn's limits, answered by its parser), 401 and
    403 where a token is asked for, and 503 overloaded past the client
    limit (not the health checks, which skip that limit). Every 503 has a
    Retry-After header."""
    error_ref = {"$ref": "#/components/schemas/Error"}
    json = {"application/json": {"schema": error_ref}}
    for path, operations in result["paths"].items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            common = {
                "400": "bad_request: malformed, or a Host this node does not serve.",
                "406": "not_acceptable: no answer in a type the Accept header allows.",
                "414": "too_large: a request line over the HTTP server's limit "
                "(4094 bytes).",
                "431": "too_large: header fields over the HTTP server's limits.",
            }
            if operation.get("security"):
                common["401"] = "unauthorized: no valid token, where one is needed."
                common["403"] = "forbidden: the token lacks the permission."
            if not path.startswith("/api/health/"):
                common["503"] = "overloaded: too many client requests in flight."
            for status_code, description in common.items():
                responses.setdefault(
                    status_code, {"description": description, "content": json}
                )
            if "503" in responses:
                responses["503"]["headers"] = {"Retry-After": RETRY_AFTER}
            operation["responses"] = dict(
                sorted(responses.items(), key=lambda item: item[0])
            )
    return result


class SchemaView(SpectacularAPIView):
    """GET /api/schema/: the OpenAPI document (JSON; YAML on request).
    Open without a token (CONTRACT.md, Security settings)."""

    authentication_classes = []
    required_permission = None
    renderer_classes = [OpenApiJsonRenderer, OpenApiYamlRenderer]


class DocsView(SpectacularSwaggerView):
    """GET /api/docs/: Swagger UI, from this node's own static files."""

    authentication_classes = []
    required_permission = None


class RedocView(SpectacularRedocView):
    """GET /api/redoc/: Redoc, from this node's own static files."""

    authentication_classes = []
    required_permission = None
