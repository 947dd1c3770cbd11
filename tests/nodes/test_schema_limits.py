"""The schema's request limits are the views' (nodes/schema_limits.py):
what matches the schema's patterns the node accepts, and the schema says
which fields go together, so generated requests reach the views."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consensus import access
from consensus.addresses import normalise_address
from nodes.schema_limits import ADDRESS_MAX_LENGTH, ADDRESS_PATTERN, PERMISSIONS_PATTERN

pytestmark = pytest.mark.django_db


@settings(max_examples=300, deadline=None)
@given(st.from_regex(ADDRESS_PATTERN, fullmatch=True))
def test_every_address_the_pattern_allows_is_accepted(address):
    assert len(address) <= ADDRESS_MAX_LENGTH
    normalise_address(address)


@pytest.mark.parametrize(
    "address",
    [":9990", "127.0.0.1:9990", "[::1]:9990", "[::]:1", "node-1.example:65535",
     "10.0.0.7:80", "[2001:db8:0:0:0:0:0:1]:9990", "localhost:9990"],
)  # fmt: skip
def test_the_usual_addresses_match(address):
    assert re.fullmatch(ADDRESS_PATTERN, address)


@pytest.mark.parametrize(
    "address", ["9990", "127.0.0.1", "1.2:80", "host:0", "host:65536", "h_st:80",
                "256.0.0.1:80", "http://h:80"],
)  # fmt: skip
def test_addresses_the_node_refuses_do_not_match(address):
    assert not re.fullmatch(ADDRESS_PATTERN, address)


@settings(max_examples=100, deadline=None)
@given(st.from_regex(PERMISSIONS_PATTERN, fullmatch=True))
def test_every_permissions_string_the_pattern_allows_is_accepted(text):
    assert access.parse_permissions(text)


def test_the_schema_says_which_fields_go_together(api):
    schema = api.get("/api/schema/").json()
    components = schema["components"]["schemas"]
    kv = schema["paths"]["/api/kv/{key}"]
    # PUT: the body without the at-most-once pair, or with both halves.
    put = kv["put"]["requestBody"]["content"]["application/json"]["schema"]
    choices = components[put["$ref"].rsplit("/", 1)[1]]["anyOf"]
    required = [
        set(components[c["$ref"].rsplit("/", 1)[1]]["required"]) for c in choices
    ]
    assert required == [{"value"}, {"value", "client_id", "seq"}]
    # DELETE: the pair is one optional object in the query, both required.
    session = next(p for p in kv["delete"]["parameters"] if p["name"] == "session")
    assert (session["in"], session["style"], session["explode"]) == (
        "query",
        "form",
        True,
    )
    assert session["schema"]["required"] == ["client_id", "seq"]
    assert not session.get("required")
    # PATCH /api/users/<username> needs its permissions.
    patch = schema["paths"]["/api/users/{username}"]["patch"]
    body = patch["requestBody"]["content"]["application/json"]["schema"]
    assert components[body["$ref"].rsplit("/", 1)[1]]["required"] == ["permissions"]
    key = next(p for p in kv["get"]["parameters"] if p["name"] == "key")
    assert (key["schema"]["minLength"], key["schema"]["maxLength"]) == (1, 512)


def test_answers_link_to_what_they_name(api):
    paths = api.get("/api/schema/").json()["paths"]
    put = paths["/api/kv/{key}"]["put"]["responses"]["200"]["links"]
    assert put["DeleteKey"] == {
        "operationId": "kv_destroy",
        "parameters": {"path.key": "$response.body#/key"},
    }
    operations = {op["operationId"] for ops in paths.values() for op in ops.values()}
    for path in ("/api/kv/{key}", "/api/tokens"):
        for operation in paths[path].values():
            for link in operation["responses"]["200"].get("links", {}).values():
                assert link["operationId"] in operations
