"""Server addresses: parse and normalise ``host:port`` (``:port`` is shorthand
for ``127.0.0.1:port``, CONTRACT.md). Standard library only.
"""

import ipaddress
import re

DEFAULT_HOST = "127.0.0.1"

_PORT = re.compile(r"[0-9]{1,5}")
_DOTTED_NUMBERS = re.compile(r"[0-9.]+")
# RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


class InvalidAddress(ValueError):
    """A server address that is not ``host:port``; the message is one line."""


def parse_address(text: str) -> tuple[str, int]:
    """Split a server address into (host, port), ``:port`` completed with
    DEFAULT_HOST; the host is kept as written. Raise InvalidAddress."""
    if not isinstance(text, str):
        raise InvalidAddress(f"invalid server address {text!r}: not a string")
    raw = text.strip()
    if "://" in raw:
        raise _invalid(text, "give host:port, without a scheme such as http://")
    host, colon, port_text = raw.rpartition(":")
    if not colon:
        raise _invalid(text, "expected host:port or :port")
    return _check_host(text, host), _check_port(text, port_text)


def normalise_address(text: str) -> str:
    """The full form of a server address: ``':9990'`` -> ``'127.0.0.1:9990'``."""
    host, port = parse_address(text)
    return f"{host}:{port}"


def _check_host(text: str, host: str) -> str:
    if host == "":
        return DEFAULT_HOST
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
            return host
        except ValueError:
            raise _invalid(text, f"{host} is not an IPv6 address") from None
    if ":" in host:
        raise _invalid(text, "write an IPv6 host in brackets, e.g. [::1]:9990")
    if _DOTTED_NUMBERS.fullmatch(host):
        # All digits and dots can only be an IPv4 address, never a host name.
        try:
            ipaddress.IPv4Address(host)
            return host
        except ValueError:
            raise _invalid(text, f"{host} is not an IPv4 address") from None
    if len(host) > 253 or not _HOSTNAME.fullmatch(host):
        raise _invalid(text, f"{host!r} is not a valid host name")
    return host


def _check_port(text: str, port_text: str) -> int:
    if not _PORT.fullmatch(port_text):
        raise _invalid(text, f"the port {port_text!r} is not a number")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise _invalid(text, f"the port {port} is not between 1 and 65535")
    return port


def _invalid(text: str, why: str) -> InvalidAddress:
    return InvalidAddress(f"invalid server address {text!r}: {why}")
