"""The intake's TLS listener with client certificates (mutual TLS).

Twisted's ``ssl:`` endpoint string has no client-CA option, so with
``intake.client_ca`` the listener's context is built here from the same
string (``ssl:7401:interface=0.0.0.0:privateKey=key.pem:certKey=cert.pem``):
TLS 1.2 at least, and a client certificate signed by one of the CA
certificates in ``client_ca`` is required before a byte of intake is read.
Which terminal a certificate may speak for is decided per request
(``terminals[].cert_sha256``, see smsgw.intake.decide).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from twisted.internet import ssl
from twisted.internet.endpoints import SSL4ServerEndpoint, serverFromString
from twisted.internet.interfaces import IStreamServerEndpoint

__all__ = ["TlsConfigError", "intake_endpoint", "parse_listen"]

_SPLIT = re.compile(r"(?<!\\):")


class TlsConfigError(ValueError):
    """A listener string or certificate file that cannot be used."""


def parse_listen(listen: str) -> tuple[str, list[str], dict[str, str]]:
    """A Twisted endpoint string: (kind, positional arguments, keyword arguments).

    ``\\:`` stands for a colon inside a value, as in Twisted's syntax.
    """
    kind, *rest = [part.replace("\\:", ":") for part in _SPLIT.split(listen)]
    args: list[str] = []
    kwargs: dict[str, str] = {}
    for part in rest:
        name, eq, value = part.partition("=")
        if eq:
            kwargs[name] = value
        else:
            args.append(part)
    return kind, args, kwargs


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise TlsConfigError(f"{what} {path}: {e.strerror}") from None


def intake_endpoint(
    reactor: Any, listen: str, client_ca: Path | None
) -> IStreamServerEndpoint:
    """The intake listener: ``listen`` as Twisted reads it, or, with
    ``client_ca``, an ``ssl:`` listener that requires client certificates.

    Raises TlsConfigError for unreadable or unusable key, certificate or CA files.
    """
    if client_ca is None:
        return serverFromString(reactor, listen)  # type: ignore[no-any-return]
    kind, args, kwargs = parse_listen(listen)
    if kind not in ("ssl", "tls"):
        raise TlsConfigError(f"client_ca needs an ssl: listener, got {kind}:")
    port = int(kwargs.pop("port", args[0] if args else "0"))
    key_file = kwargs.get("privateKey")
    if key_file is None:
        raise TlsConfigError("the ssl: listener needs privateKey=FILE")
    cert_pem = _read(kwargs.get("certKey", key_file), "certKey")
    key_pem = _read(key_file, "privateKey")
    ca_pem = _read(str(client_ca), "client_ca")
    try:
        certificate = ssl.PrivateCertificate.loadPEM(cert_pem + b"\n" + key_pem)
        cas = [
            ssl.Certificate.loadPEM(block)
            for block in re.findall(
                rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----",
                ca_pem,
                re.S,
            )
        ]
        if not cas:
            raise TlsConfigError(f"client_ca {client_ca}: no PEM certificate in it")
        chain = [
            ssl.Certificate.loadPEM(block).original
            for block in re.findall(
                rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----",
                _read(kwargs["extraCertChain"], "extraCertChain"),
                re.S,
            )
        ] if "extraCertChain" in kwargs else None  # fmt: skip
        options = ssl.CertificateOptions(
            privateKey=certificate.privateKey.original,
            certificate=certificate.original,
            extraCertChain=chain,
            # A trustRoot makes the listener require and verify client
            # certificates (requireCertificate is implied).
            trustRoot=ssl.trustRootFromCertificates(cas),
            raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
        )
    except TlsConfigError:
        raise
    except Exception as e:  # pyOpenSSL's errors name little; say which files
        raise TlsConfigError(
            f"cannot use {key_file} / {client_ca} for a TLS listener: {e}"
        ) from None
    return SSL4ServerEndpoint(
        reactor,
        port,
        options,
        backlog=int(kwargs.get("backlog", "50")),
        interface=kwargs.get("interface", ""),
    )
