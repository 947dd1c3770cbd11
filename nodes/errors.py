"""The API's error shape, ``{"error": "<code>", "detail": "<text>"}``, for DRF
views (the EXCEPTION_HANDLER setting) and Django's 404/500 handlers.
"""

import logging
import math

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse, UnreadablePostError
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import set_rollback

from .client import Answer

logger = logging.getLogger("nodes.api")

# Paths whose clients expect JSON, even from Django's own 404 and 500 pages.
API_PREFIXES = ("/api", "/raft")

# Codes for DRF's and Django's own exceptions, by the status they answer with.
# 415 is folded into 400: a body that is not JSON is a malformed request.
CODES_BY_STATUS = {
    status.HTTP_400_BAD_REQUEST: "bad_request",
    status.HTTP_401_UNAUTHORIZED: "unauthorized",
    status.HTTP_403_FORBIDDEN: "forbidden",
    status.HTTP_404_NOT_FOUND: "not_found",
    status.HTTP_405_METHOD_NOT_ALLOWED: "method_not_allowed",
    status.HTTP_406_NOT_ACCEPTABLE: "not_acceptable",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "bad_request",
    status.HTTP_429_TOO_MANY_REQUESTS: "throttled",
}


class ApiError(exceptions.APIException):
    """An error answer with a contract code (``default_code``) and status.

    ``retry_after_s`` becomes a Retry-After header; keyword ``extra`` fields
    are added to the JSON body next to ``error`` and ``detail``.
    """

    def __init__(self, detail=None, *, retry_after_s=None, **extra):
        super().__init__(detail)
        self.retry_after_s = retry_after_s
        self.extra = extra


class BadRequest(ApiError):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "bad_request"
    default_detail = "The request is malformed; nothing was changed."


class NotFound(ApiError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "not_found"
    default_detail = "No such server or route."


class Conflict(ApiError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "A conflicting change is in progress; nothing was changed."


class PreconditionFailed(ApiError):
    """412: a compare-and-set's prev_revision is not the key's revision
    (``current_revision``, 0 if absent); nothing changed."""

    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_code = "precondition_failed"
    default_detail = "The key's revision is not prev_revision; nothing changed."


class Compacted(ApiError):
    """410: a watch asked for changes older than the history kept."""

    status_code = status.HTTP_410_GONE
    default_code = "compacted"
    default_detail = "Those changes are no longer kept; read the keys again."


class TooLarge(ApiError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"
    default_detail = "The request is too large; nothing was changed."


class Unprocessable(ApiError):
    """422: a server being added did not catch up (consensus.membership's
    CatchupFailed); the learner was removed again."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_code = "catchup_failed"
    default_detail = (
        "The server did not catch up in time; the configuration is unchanged."
    )


class Unavailable(ApiError):
    """503: no leader could take the request (this node is not the leader
    and cannot forward, the node is starting, or the entry was lost);
    nothing was appended, and the client may retry after Retry-After.

    ``leader`` is the leader this node knows of (a full address) or None.
    """

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "no_leader"
    default_detail = "No leader is known now; nothing was appended. Retry later."

    def __init__(self, detail=None, *, leader=None, retry_after_s=1):
        super().__init__(detail, retry_after_s=retry_after_s, leader=leader)


class TimedOut(ApiError):
    status_code = status.HTTP_504_GATEWAY_TIMEOUT
    default_code = "timeout"
    default_detail = (
        "Timed out: the outcome is unknown; the command may or may not commit."
    )


def exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every exception becomes the error shape.

    An unexpected exception is logged with its traceback and answered with
    a bare 500, so no internals reach the client, even with DEBUG on.
    """
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    elif isinstance(exc, RequestDataTooBig):
        # Django's DATA_UPLOAD_MAX_MEMORY_SIZE, met while DRF reads a body.
        exc = TooLarge(str(exc))
    elif isinstance(exc, UnreadablePostError):
        # The body stopped arriving (RAFT_READ_TIMEOUT_S) or the client left.
        exc = BadRequest("The request body did not arrive; nothing was changed.")

    if not isinstance(exc, exceptions.APIException):
        view = context.get("view")
        logger.error("Internal error in %s", type(view).__name__, exc_info=exc)
        set_rollback()
        return Response(
            internal_error_body(), status=status.HTTP_500_INTERNAL_SERVER_ERROR
        )

    status_code, body, headers = _error_parts(exc)
    set_rollback()
    return Response(body, status=status_code, headers=headers)


def error_answer(exc: exceptions.APIException) -> Answer:
    """The Answer an HTTP client gets for ``exc``, for callers in this
    process (the admin, the dashboard) that skip the HTTP round trip."""
    status_code, body, headers = _error_parts(exc)
    return Answer(status_code, body, headers.get("Retry-After"))


def _error_parts(exc: exceptions.APIException) -> tuple[int, dict, dict]:
    """Status, body and headers of the error shape for a DRF exception."""
    status_code = exc.status_code
    if isinstance(exc, exceptions.UnsupportedMediaType):
        status_code = status.HTTP_400_BAD_REQUEST
    if isinstance(exc, ApiError):
        code = exc.default_code
    else:
        code = CODES_BY_STATUS.get(exc.status_code, exc.default_code)

    body = {"error": code, "detail": _detail_text(exc.detail)}
    if isinstance(exc, exceptions.UnsupportedMediaType):
        body["detail"] += " Send JSON with Content-Type: application/json."
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    retry_after_s = getattr(exc, "retry_after_s", None)
    if retry_after_s is None:
        retry_after_s = getattr(exc, "wait", None)  # DRF's Throttled
    if retry_after_s is not None:
        headers["Retry-After"] = str(max(0, math.ceil(retry_after_s)))
    if isinstance(exc, ApiError):
        body.update(exc.extra)
    return status_code, body, headers


def bad_request(request, exception):
    """handler400 (e.g. a Host header the node does not serve, see
    ALLOWED_HOSTS): JSON under /api/ and /raft/, Django's page elsewhere."""
    if _is_api_path(request.path):
        detail = (
            "Bad request: the Host header names no host this node serves on, "
            "or the request is malformed."
        )
        return JsonResponse(
            {"error": "bad_request", "detail": detail},
            status=status.HTTP_400_BAD_REQUEST,
        )
    return defaults.bad_request(request, exception)


def page_not_found(request, exception):
    """handler404: JSON under /api/ and /raft/, Django's page elsewhere."""
    if _is_api_path(request.path):
        detail = f"No route for {request.method} {request.path}."
        return JsonResponse(
            {"error": "not_found", "detail": detail}, status=status.HTTP_404_NOT_FOUND
        )
    return defaults.page_not_found(request, exception)


def server_error(request):
    """handler500: JSON under /api/ and /raft/, Django's page elsewhere.

    Django has already logged the traceback; the client gets none of it.
    """
    if _is_api_path(request.path):
        return JsonResponse(
            internal_error_body(), status=status.HTTP_500_INTERNAL_SERVER_ERROR
        )
    return defaults.server_error(request)


def _is_api_path(path):
    return any(
        path == prefix or path.startswith(prefix + "/") for prefix in API_PREFIXES
    )


def internal_error_body():
    return {
        "error": "internal_error",
        "detail": "The server failed to handle the request; its log has the details.",
    }


def _detail_text(detail):
    """One line for a person from DRF's detail (a string, list or dict)."""
    if isinstance(detail, dict):
        parts = []
        for field, value in detail.items():
            text = _detail_text(value)
            if field == api_settings.NON_FIELD_ERRORS_KEY:
                parts.append(text)
            else:
                parts.append(f"{field}: {text}")
        return "; ".join(parts)
    if isinstance(detail, list):
        return " ".join(_detail_text(item) for item in detail)
    return str(detail)
