"""TLS between nodes: the SSL contexts of both ends and the check that a
peer call came with a certificate the cluster's CA signed. No Django
imports: runnode, gunicorn_conf and the runtime share it.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass

# gunicorn's gthread worker does the handshake on a request thread, on a
# blocking socket: a client that starts one and stalls would hold the
# thread for good.
HANDSHAKE_TIMEOUT_S = 10.0


class _ServerContext(ssl.SSLContext):
    """An SSLContext whose server sockets finish their handshake within
    ``handshake_timeout_s`` or fail with an SSLError (which gunicorn logs in
    one line and closes). The socket's own timeout is left as it was."""

    handshake_timeout_s = HANDSHAKE_TIMEOUT_S

    def wrap_socket(self, sock, *args, **kwargs):
        if not kwargs.get("server_side") or not _connected(sock):
            return super().wrap_socket(sock, *args, **kwargs)
        before = sock.gettimeout()
        sock.settimeout(self.handshake_timeout_s)
        kwargs["do_handshake_on_connect"] = False
        wrapped = super().wrap_socket(sock, *args, **kwargs)
        try:
            wrapped.do_handshake()
        except TimeoutError:
            wrapped.close()
            raise ssl.SSLError(
                f"TLS handshake not done within {self.handshake_timeout_s:g} s"
            ) from None
        wrapped.settimeout(before)
        return wrapped


def _connected(sock) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False  # a listening socket: its accepted ones are wrapped too
    return True


class TLSConfigError(ValueError):
    """The certificate, key or CA cannot be used; the message is one line."""


@dataclass(frozen=True)
class TLSFiles:
    """This node's certificate and key, and the CA every node's is from."""

    cert: str
    key: str
    ca: str

    def client_context(self) -> ssl.SSLContext:
        """For calls to other nodes: verify the server's certificate against
        the CA and its name against the address called (an IP address needs
        an IP subjectAltName), and show this node's own certificate."""
        context = _context(ssl.Purpose.SERVER_AUTH, self.ca)
        self._load_chain(context)
        return context

    def server_context(
        self, handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S
    ) -> ssl.SSLContext:
        """For gunicorn: ask every client for a certificate, refuse one the
        CA did not sign, and let a client without one in (the API's CLI and
        browsers); /raft/ then requires one (verified_peer). A handshake
        not done within ``handshake_timeout_s`` fails."""
        context = _ServerContext(ssl.PROTOCOL_TLS_SERVER)
        context.handshake_timeout_s = handshake_timeout_s
        try:
            context.load_verify_locations(cafile=self.ca)
        except FileNotFoundError:
            raise TLSConfigError(
                f"cannot read the CA {self.ca}: no such file"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise TLSConfigError(
                f"cannot use the CA {self.ca}: {_reason(exc)}"
            ) from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._load_chain(context)
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def check(self) -> None:
        """Raise TLSConfigError unless both contexts can be made."""
        self.client_context()
        self.server_context()

    def _load_chain(self, context: ssl.SSLContext) -> None:
        try:
            context.load_cert_chain(self.cert, self.key)
        except FileNotFoundError as exc:
            raise TLSConfigError(f"cannot read {exc.filename}: no such file") from None
        except (OSError, ssl.SSLError) as exc:
            raise TLSConfigError(
                f"cannot use the certificate {self.cert} with the key {self.key}: "
                f"{_reason(exc)}"
            ) from None


def _context(purpose: ssl.Purpose, ca: str) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(purpose, cafile=ca)
    except FileNotFoundError:
        raise TLSConfigError(f"cannot read the CA {ca}: no such file") from None
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(f"cannot use the CA {ca}: {_reason(exc)}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _reason(exc: Exception) -> str:
    return getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)


def peer_certificate(meta: dict) -> dict | None:
    """The verified client certificate of the request whose WSGI environ
    is ``meta`` (getpeercert()'s dict), or None: see verified_peer."""
    sock = meta.get("gunicorn.socket")
    getpeercert = getattr(sock, "getpeercert", None)
    if getpeercert is None:
        return None
    try:
        return getpeercert() or None
    except (OSError, ValueError):
        return None


def names_host(certificate: dict, host: str) -> bool:
    """Whether ``certificate`` (getpeercert()'s dict) names ``host``, an IP
    address or a DNS name, in its subjectAltName: what a peer calling it at
    ``host`` would check (a leftmost ``*`` label matches one label)."""
    try:
        wanted_ip = ipaddress.ip_address(host)
    except ValueError:
        wanted_ip = None
    for kind, value in certificate.get("subjectAltName", ()):
        if kind == "IP Address" and wanted_ip is not None:
            try:
                if ipaddress.ip_address(value.strip()) == wanted_ip:
                    return True
            except ValueError:
                continue
        elif kind == "DNS" and wanted_ip is None:
            if _dns_matches(value.lower(), host.lower().rstrip(".")):
                return True
    return False


def _dns_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        first, _, rest = host.partition(".")
        return bool(first) and rest == pattern[2:]
    return pattern == host


def verified_peer(meta: dict) -> bool:
    """Whether the request whose WSGI environ is ``meta`` came over TLS with
    a client certificate the CA signed. gunicorn puts the connection's
    socket in the environ; with CERT_OPTIONAL, getpeercert() is None when
    the client showed none (one the CA did not sign never gets this far:
    the handshake fails)."""
    return peer_certificate(meta) is not None


def tls_files(settings) -> TLSFiles | None:
    """The TLSFiles named by ``settings`` (RAFT_TLS_CERT, RAFT_TLS_KEY,
    RAFT_TLS_CA: all three or none, as runnode checks), or None."""
    if not settings.RAFT_TLS_CERT:
        return None
    return TLSFiles(settings.RAFT_TLS_CERT, settings.RAFT_TLS_KEY, settings.RAFT_TLS_CA)
