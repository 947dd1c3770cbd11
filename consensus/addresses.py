"""Server addresses: every layer names a server by its full host:port."""

DEFAULT_HOST = "127.0.0.1"


class AddressError(ValueError):
    pass


def normalize_address(text: str) -> str:
    """':9990' -> '127.0.0.1:9990'; 'host:port' is checked and kept."""
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise AddressError(f"invalid server address {text!r}: expected host:port or :port")
    host = host or DEFAULT_HOST
    if any(c.isspace() for c in host) or "/" in host:
        raise AddressError(f"invalid host in server address {text!r}")
    return f"{host}:{int(port)}"
