"""GET /api/schema/ (OpenAPI, drf-spectacular) and its pages for people:
open without a token, the client API only, every error in the error shape."""

from urllib.parse import quote

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def auth_required(settings):
    settings.RAFT_AUTH_REQUIRED = True


def test_the_schema_is_open_and_covers_the_client_api_only(api, auth_required):
    response = api.get("/api/schema/")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    schema = response.json()
    paths = schema["paths"]
    assert {"/api/commands", "/api/kv/{key}", "/api/servers", "/api/watch"} <= set(
        paths
    )
    assert all(path.startswith("/api/") for path in paths)
    assert not {"/api/schema/", "/api/docs/", "/api/redoc/"} & set(paths)
    scheme = schema["components"]["securitySchemes"]["tokenAuth"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == (
        "apiKey",
        "header",
        "Authorization",
    )
    # /api/status and the health checks are open; the rest ask for a token.
    assert "security" not in paths["/api/status"]["get"]
    assert paths["/api/log"]["get"]["security"] == [{"tokenAuth": []}]


def test_every_error_answer_is_the_error_shape(api):
    schema = api.get("/api/schema/").json()
    components = schema["components"]["schemas"]
    assert components["Error"]["required"] == ["detail", "error"]
    assert "no_leader" in components["ErrorEnum"]["enum"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status_code, answer in operation["responses"].items():
                if status_code.startswith("2"):
                    continue
                ref = answer["content"]["application/json"]["schema"]["$ref"]
                name = ref.rsplit("/", 1)[1]
                assert {"error", "detail"} <= set(components[name]["properties"]), (
                    method,
                    path,
                    status_code,
                )
                if status_code == "503":
                    assert "Retry-After" in answer["headers"], (method, path)


def test_contract_statuses_are_documented(api):
    paths = api.get("/api/schema/").json()["paths"]
    put = paths["/api/kv/{key}"]["put"]["responses"]
    assert {"200", "400", "401", "403", "409", "412", "413", "503", "504"} <= set(put)
    assert put["412"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/PreconditionFailedError"
    )
    assert "422" in paths["/api/servers"]["post"]["responses"]
    assert "410" in paths["/api/watch"]["get"]["responses"]


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_the_pages_are_open_and_use_the_nodes_own_static_files(
    api, auth_required, page
):
    response = api.get(page)
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/" in html
    assert "cdn.jsdelivr.net" not in html


@pytest.mark.django_db(transaction=True)
def test_a_key_may_hold_a_newline(api, runtime):
    """The route takes any character: a newline was no route (404, and no
    such answer in the schema)."""
    response = api.get("/api/kv/" + quote("a\nb", safe=""), {"consistency": "stale"})
    assert response.status_code == 404
    assert response.json()["detail"] == "No key 'a\\nb'."
