"""``smsgw test-certs``: a test CA, a server certificate and terminal certificates.

For trying TLS with client certificates (and for the tests): never for
production, where the bank's PKI issues them. Writes into ``--out``:
``ca.pem`` (give it as ``intake.client_ca``; terminals trust it for the
server too), ``ca-key.pem``, ``server.pem`` (key and certificate, for the
listener's ``privateKey=``) and ``terminal-<ID>.pem`` per terminal (key and
certificate, for the terminal's client); keys with mode 0600. Prints the
configuration lines, with each terminal's ``cert_sha256``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["add_test_certs_command", "make_test_certs"]

_DAYS = 825
_CA_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "smsgw test"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, private: bool) -> None:
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644
    )
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    common: str,
    usage: x509.ObjectIdentifier,
    now: dt.datetime,
    san: Sequence[x509.GeneralName] = (),
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(x509.ExtendedKeyUsage([usage]), False)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(san)), False)
    return key, builder.sign(ca_key, hashes.SHA256())


def make_test_certs(
    out: Path, terminals: Sequence[str], host: str = "localhost"
) -> dict[str, str]:
    """Write the test CA, server and terminal files into ``out``; returns
    terminal id -> its certificate's SHA-256 fingerprint (lowercase hex)."""
    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("smsgw test CA"))
        .issuer_name(_name("smsgw test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        .add_extension(_CA_USAGE, True)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    _write(out / "ca.pem", ca_cert.public_bytes(pem), False)
    _write(out / "ca-key.pem", _pem_key(ca_key), True)
    names: list[x509.GeneralName] = [x509.DNSName(host)]
    if host == "localhost":
        names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    key, cert = _issue(
        ca_key, ca_cert, host, ExtendedKeyUsageOID.SERVER_AUTH, now, names
    )
    _write(out / "server.pem", _pem_key(key) + cert.public_bytes(pem), True)
    prints: dict[str, str] = {}
    for terminal in terminals:
        key, cert = _issue(
            ca_key, ca_cert, terminal, ExtendedKeyUsageOID.CLIENT_AUTH, now
        )
        _write(
            out / f"terminal-{terminal}.pem",
            _pem_key(key) + cert.public_bytes(pem),
            True,
        )
        prints[terminal] = cert.fingerprint(hashes.SHA256()).hex()
    return prints


def _run(ns: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    folder = Path(ns.out)
    prints = make_test_certs(folder, ns.terminal or ["T1001"], ns.host)
    server = folder / "server.pem"
    out.write(
        f"wrote {folder}/ca.pem, ca-key.pem, server.pem and "
        f"{', '.join(f'terminal-{t}.pem' for t in prints)} (TEST ONLY)\n\n"
        "intake:\n"
        f'  listen: "ssl:7401:interface=127.0.0.1:privateKey={server}"\n'
        f"  client_ca: {folder / 'ca.pem'}\n"
        "terminals:\n"
    )
    for terminal, fingerprint in prints.items():
        out.write(
            f"  - {{id: {terminal}, key_file: ..., cert_sha256: {fingerprint}}}\n"
        )
    return 0


def add_test_certs_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Register ``smsgw test-certs``."""
    p = sub.add_parser(
        "test-certs",
        help="make a TEST CA, server and terminal certificates (mutual TLS trials)",
    )
    p.add_argument("--out", required=True, help="folder to write the PEM files into")
    p.add_argument(
        "--terminal",
        action="append",
        help="a terminal id to make a client certificate for (repeat; default T1001)",
    )
    p.add_argument("--host", default="localhost", help="the server's name")
    p.set_defaults(func=_run)
