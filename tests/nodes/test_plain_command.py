"""nodes.serializers.plain_command: the short way past the command
serializer takes exactly what the serializer takes, with the same values,
and leaves everything else to it."""

import pytest
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from nodes.kv_views import PutSerializer, plain_put
from nodes.serializers import MAX_SEQ, CommandRequestSerializer, plain_command

LIMIT = 64

# Near the edges: blank, NUL, a lone surrogate, at and past the lengths.
edges = st.sampled_from(
    ["", " ", "\x00", "a\x00b", "\ud800", "x" * 200, "x" * 201, "é" * 32, "é" * 33]
)
text = st.one_of(edges, st.text(max_size=80))
value = st.one_of(
    st.none(),
    text,
    st.integers(min_value=-5, max_value=MAX_SEQ + 5),
    st.sampled_from([True, False, 1.0, MAX_SEQ, MAX_SEQ + 1, -1, [], {}]),
)
body = st.one_of(
    st.fixed_dictionaries(
        {"command": value}, optional={"client_id": value, "seq": value, "x": value}
    ),
    st.fixed_dictionaries({"command": text, "client_id": text, "seq": value}),
    st.dictionaries(st.sampled_from(["client_id", "seq", "other"]), value),
    st.lists(text, max_size=2),
    text,
)


COMMAND_FIELDS = ("command", "client_id", "seq")


def validated(serializer_class, fields, data):
    """The serializer's validated ``fields`` as a tuple; None if it refuses
    the body, the exception's class if it raises (TooLarge: a 413)."""
    serializer = serializer_class(data=data)
    try:
        valid = serializer.is_valid()
    except Exception as exc:
        return type(exc)
    if not valid:
        return None
    return tuple(serializer.validated_data.get(name) for name in fields)


def serializer_answer(data):
    return validated(CommandRequestSerializer, COMMAND_FIELDS, data)


@override_settings(RAFT_MAX_COMMAND_BYTES=LIMIT)
@settings(max_examples=600, deadline=None)
@given(body)
def test_plain_command_takes_only_what_the_serializer_takes_as_is(data):
    plain = plain_command(data)
    if plain is not None:
        assert serializer_answer(data) == plain


@override_settings(RAFT_MAX_COMMAND_BYTES=LIMIT)
@pytest.mark.parametrize(
    "data",
    [
        {"command": "set x 1"},
        {"command": " padded ", "client_id": None, "seq": None},
        {"command": "é" * 32, "client_id": "c" * 200, "seq": 0},
        {"command": "x", "client_id": "me", "seq": MAX_SEQ, "extra": 1},
    ],
)
def test_the_usual_bodies_take_the_short_way(data):
    plain = plain_command(data)
    assert plain is not None
    assert plain == serializer_answer(data)


@override_settings(RAFT_MAX_COMMAND_BYTES=LIMIT)
@pytest.mark.parametrize(
    "data",
    [
        {"command": ""},
        {"command": "a\x00b"},
        {"command": "\ud800"},
        {"command": "é" * 33},  # 66 bytes of UTF-8, over the limit
        {"command": 5},
        {"command": "x", "client_id": "c" * 201, "seq": 1},
        {"command": "x", "client_id": "c", "seq": None},
        {"command": "x", "client_id": None, "seq": 1},
        {"command": "x", "client_id": "c", "seq": True},
        {"command": "x", "client_id": "c", "seq": MAX_SEQ + 1},
        {"command": "x", "client_id": "c", "seq": -1},
        {"command": "x", "client_id": "", "seq": 1},
    ],
)
def test_the_edges_go_to_the_serializer(data):
    assert plain_command(data) is None
    # ... and the serializer refuses them (400, or 413 for the size).
    assert not isinstance(serializer_answer(data), tuple)


# PUT /api/kv/<key>: nodes.kv_views.plain_put against PutSerializer.
put_body = st.one_of(
    st.fixed_dictionaries(
        {"value": value},
        optional={"prev_revision": value, "client_id": value, "seq": value},
    ),
    st.fixed_dictionaries({"value": text, "client_id": text, "seq": value}),
    st.dictionaries(st.sampled_from(["prev_revision", "client_id", "seq"]), value),
    st.lists(text, max_size=2),
)
PUT_FIELDS = ("value", "prev_revision", "client_id", "seq")


def put_serializer_answer(data):
    return validated(PutSerializer, PUT_FIELDS, data)


@settings(max_examples=600, deadline=None)
@given(put_body)
def test_plain_put_takes_only_what_the_serializer_takes_as_is(data):
    plain = plain_put(data)
    if plain is not None:
        assert put_serializer_answer(data) == tuple(plain[n] for n in PUT_FIELDS)


@pytest.mark.parametrize(
    "data, plain",
    [
        ({"value": ""}, True),
        ({"value": "v", "prev_revision": 0}, True),
        ({"value": "v", "prev_revision": None, "client_id": "c", "seq": 1}, True),
        ({"value": "a\x00b"}, False),
        ({"value": "v", "prev_revision": True}, False),
        ({"value": "v", "prev_revision": -1}, False),
        ({"value": "v", "client_id": "c"}, False),
        ({"value": "x" * (64 * 1024 + 1)}, False),  # the serializer's 413
    ],
)
def test_the_usual_puts_take_the_short_way_and_the_edges_do_not(data, plain):
    assert (plain_put(data) is not None) == plain
    answer = put_serializer_answer(data)
    if plain:
        assert answer == tuple(plain_put(data)[n] for n in PUT_FIELDS)
    else:
        assert not isinstance(answer, tuple)
