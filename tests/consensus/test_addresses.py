import pytest

from consensus.addresses import InvalidAddress, normalise_address, parse_address


@pytest.mark.parametrize(
    "text, full",
    [
        (":9990", "127.0.0.1:9990"),
        (" :9991 ", "127.0.0.1:9991"),
        ("127.0.0.1:9990", "127.0.0.1:9990"),
        ("10.0.0.7:80", "10.0.0.7:80"),
        ("localhost:9992", "localhost:9992"),
        ("node-1.example.com:9990", "node-1.example.com:9990"),
        ("127.0.0.1:09990", "127.0.0.1:9990"),
        ("[::1]:9990", "[::1]:9990"),
        ("[fe80::1]:1", "[fe80::1]:1"),
    ],
)
def test_normalise_address(text, full):
    """Both forms are accepted; the full form comes out."""
    assert normalise_address(text) == full


def test_parse_address_splits_host_and_port():
    assert parse_address(":9990") == ("127.0.0.1", 9990)


@pytest.mark.parametrize(
    "text, why",
    [
        ("9990", "expected host:port or :port"),
        ("", "expected host:port or :port"),
        (":", "the port '' is not a number"),
        (":abc", "the port 'abc' is not a number"),
        (":0", "not between 1 and 65535"),
        (":65536", "not between 1 and 65535"),
        (":99999999", "is not a number"),
        ("ho st:1", "is not a valid host name"),
        ("-bad:1", "is not a valid host name"),
        ("a:b:1", "write an IPv6 host in brackets"),
        ("[zz]:1", "[zz] is not an IPv6 address"),
        ("999.1.1.1:1", "999.1.1.1 is not an IPv4 address"),
        ("http://x:1", "without a scheme"),
    ],
)
def test_invalid_addresses_say_why_in_one_line(text, why):
    with pytest.raises(InvalidAddress) as raised:
        normalise_address(text)
    message = str(raised.value)
    assert message.startswith(f"invalid server address {text!r}: ")
    assert why in message
    assert "\n" not in message


def test_non_string_is_invalid():
    with pytest.raises(InvalidAddress):
        normalise_address(9990)
