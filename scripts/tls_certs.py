"""Make a CA and node certificates for a cluster on TLS, with openssl.

For a local cluster, a test network or a test; a production cluster would
rather use its own PKI. Every node's certificate names the addresses it is
called at (an IP address needs an IP subjectAltName) and serves both as its
server certificate and as its client certificate towards the other nodes.

    python scripts/tls_certs.py DIR                      # ca.crt, node.crt for 127.0.0.1
    python scripts/tls_certs.py DIR --name n2 --ip 10.0.0.2 --dns n2.example
        # n2.crt and n2.key, signed by DIR/ca.crt (made first if missing)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(*args: str) -> None:
    result = subprocess.run(
        ["openssl", *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def make_ca(
    directory: Path, name: str = "ca", common_name: str = "raftsite CA", days=365
) -> tuple[Path, Path]:
    """A self-signed CA in ``directory``: (<name>.crt, <name>.key)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    crt, key = directory / f"{name}.crt", directory / f"{name}.key"
    _openssl(
        "req", "-x509", "-new", *CURVE,
        "-keyout", str(key), "-out", str(crt), "-days", str(days),
        "-subj", f"/CN={common_name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    os.chmod(key, 0o600)
    return crt, key


def make_cert(
    directory: Path,
    ca: tuple[Path, Path],
    name: str = "node",
    ips: tuple[str, ...] = ("127.0.0.1",),
    dns: tuple[str, ...] = ("localhost",),
    days: int = 365,
) -> tuple[Path, Path]:
    """A node certificate signed by ``ca`` = (crt, key), valid for the
    given IP addresses and DNS names, as server and as client:
    (<name>.crt, <name>.key)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    crt, key = directory / f"{name}.crt", directory / f"{name}.key"
    csr, ext = directory / f"{name}.csr", directory / f"{name}.ext"
    names = [f"IP:{ip}" for ip in ips] + [f"DNS:{d}" for d in dns]
    if not names:
        raise ValueError("a node certificate needs an IP address or a DNS name")
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        f"subjectAltName={','.join(names)}\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
    )
    try:
        _openssl(
            "req", "-new", *CURVE, "-keyout", str(key), "-out", str(csr),
            "-subj", f"/CN={(list(dns) + list(ips))[0]}",
        )  # fmt: skip
        os.chmod(key, 0o600)
        _openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
            "-CAcreateserial", "-CAserial", str(Path(ca[0]).with_suffix(".srl")),
            "-out", str(crt), "-days", str(days), "-extfile", str(ext),
        )  # fmt: skip
    finally:
        csr.unlink(missing_ok=True)
        ext.unlink(missing_ok=True)
    return crt, key


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--name", default="node", help="file name of the cert")
    parser.add_argument(
        "--ip", action="append", help="an IP address it is for (default 127.0.0.1)"
    )
    parser.add_argument("--dns", action="append", default=[], help="a DNS name")
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args(argv)
    ips = args.ip if args.ip is not None else ["127.0.0.1"]
    ca = args.directory / "ca.crt", args.directory / "ca.key"
    try:
        if not ca[0].exists():
            ca = make_ca(args.directory, days=args.days)
            print(f"made the CA {ca[0]} (keep {ca[1]} private)")
        crt, key = make_cert(
            args.directory, ca, args.name, tuple(ips), tuple(args.dns), args.days
        )
    except (RuntimeError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"made {crt} and {key} for {', '.join(ips + args.dns)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
