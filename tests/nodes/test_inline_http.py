"""raftsite.inline_http.parse: which requests the worker's main loop may
serve itself. Whatever it does not recognise goes to gunicorn's parser and
Django, so the cases that matter are those it must not take."""

import pytest

from raftsite.inline_http import Responses, Route, Routes, body_pending, parse

PATHS = Routes()
PATHS.add("/api/commands", Route("/api/commands", None, Responses([])))
BODY = b'{"command": "x"}'


def request(*header_lines, body=BODY, line=b"POST /api/commands HTTP/1.1"):
    headers = [b"Host: 127.0.0.1:9990", *header_lines]
    if body is not None:
        headers.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join([line, *headers]) + b"\r\n\r\n" + (body or b"")


def test_a_plain_request_is_recognised():
    raw = request(b"Content-Type: application/json", b"Accept: */*")
    parsed = parse(raw, PATHS)
    assert parsed is not None
    assert (parsed.method, parsed.path, parsed.query) == ("POST", "/api/commands", "")
    assert parsed.headers["content-type"] == "application/json"
    assert parsed.headers["accept"] == "*/*"
    assert parsed.body == BODY
    assert parsed.keep_alive
    assert parsed.raw == raw


def test_header_names_are_case_insensitive_and_values_trimmed():
    parsed = parse(request(b"CONTENT-TYPE:   application/json  "), PATHS)
    assert parsed.headers["content-type"] == "application/json"


def test_connection_close_is_kept():
    assert not parse(request(b"Connection: close"), PATHS).keep_alive


def test_a_query_is_split_off():
    parsed = parse(request(line=b"POST /api/commands?x=1 HTTP/1.1"), PATHS)
    assert (parsed.path, parsed.query) == ("/api/commands", "x=1")


@pytest.mark.parametrize(
    "raw",
    [
        # Not a path served inline.
        request(line=b"POST /api/status HTTP/1.1"),
        request(line=b"POST /api/commands/ HTTP/1.1"),
        # Not HTTP/1.1, or not a request line of three parts.
        request(line=b"POST /api/commands HTTP/1.0"),
        request(line=b"POST  /api/commands HTTP/1.1"),
        request(line=b"POST /api/commands"),
        # Framing gunicorn must judge.
        request(b"Transfer-Encoding: chunked"),
        request(b"Expect: 100-continue"),
        request(b"Upgrade: h2c"),
        request(b"Content-Length: 16"),  # a second Content-Length
        request(body=None) + b"x",  # a body without a length
        request(b"Content-Length: +16", body=None),
        # A repeated header, a header without a colon, a name with spaces.
        request(b"Accept: */*", b"Accept: */*"),
        request(b"Accept */*"),
        request(b"Accept : */*"),
        request(b" Accept: */*"),
        # A bare LF or CR inside the head.
        request(b"Accept: */*\nX-Other: 1"),
        request(b"Accept: */*\rX-Other: 1"),
        # Part of the body still to come, or another request behind it.
        request()[:-1],
        request() + b"GET /api/status HTTP/1.1\r\n\r\n",
        # A Host Django does not allow, or none.
        request().replace(b"Host: 127.0.0.1:9990", b"Host: evil.example"),
        request().replace(b"Host: 127.0.0.1:9990\r\n", b""),
        # No end of head yet.
        b"POST /api/commands HTTP/1.1\r\nHost: 127.0.0.1\r\n",
    ],
)
def test_anything_else_is_left_to_the_ordinary_path(raw):
    assert parse(raw, PATHS) is None


def test_a_long_head_is_left_to_gunicorns_limits():
    padding = b"X-Pad: " + b"p" * 9000
    assert parse(request(padding), PATHS) is None


def test_responses_carry_the_routes_headers_and_length():
    responses = Responses([("Allow", "POST, OPTIONS"), ("X-Frame-Options", "DENY")])
    data = responses.build(
        504, b'{"error":"timeout"}', keep_alive=False, extra=[("Retry-After", "1")]
    )
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 504 Gateway Timeout"
    fields = dict(line.split(": ", 1) for line in lines[1:])
    assert fields["Connection"] == "close"
    assert fields["Content-Type"] == "application/json"
    assert fields["Content-Length"] == str(len(body))
    assert fields["Allow"] == "POST, OPTIONS"
    assert fields["X-Frame-Options"] == "DENY"
    assert fields["Retry-After"] == "1"
    assert fields["Date"].endswith(" GMT")
    assert body == b'{"error":"timeout"}'


def test_a_body_still_on_its_way_is_awaited():
    raw = request(b"Content-Type: application/json")
    head_only = raw[: raw.index(b"\r\n\r\n") + 4]
    assert body_pending(head_only, PATHS)
    assert body_pending(raw[:-1], PATHS)
    assert not body_pending(raw, PATHS)  # all there
    assert not body_pending(head_only[:-2], PATHS)  # the head is not


@pytest.mark.parametrize(
    "raw",
    [
        request(line=b"POST /api/status HTTP/1.1")[:-4],
        request(b"Transfer-Encoding: chunked", body=None),
        request(b"Content-Length: 70000", body=None),
        request(b"Content-Length: x", body=None),
        request(body=None).replace(b"Content-Length: 0", b""),
    ],
)
def test_only_an_inline_routes_short_body_is_awaited(raw):
    assert not body_pending(raw.split(b"\r\n\r\n")[0] + b"\r\n\r\n", PATHS)


def test_the_allowed_hosts_in_force_decide_not_an_earlier_answer(settings):
    # The Host check is remembered per host and ALLOWED_HOSTS together.
    assert parse(request(), PATHS) is not None
    settings.ALLOWED_HOSTS = ["example.org"]
    assert parse(request(), PATHS) is None
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    assert parse(request(), PATHS) is not None
