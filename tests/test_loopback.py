"""Real reactor, 127.0.0.1, port 0: our carrier binds to our simulator over TCP,
submits a long alert and gets every part's receipt."""

from __future__ import annotations

import datetime
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import defer, reactor, task

from smsgw.carrier.compose import compose
from smsgw.carrier.deliveries import Answer, MoEvent, ReceiptEvent
from smsgw.carrier.service import CarrierService, reactor_endpoints
from smsgw.smsc.service import make_smsc_service
from smsgw.smsc.settings import SmscSettings
from tests.test_integration import carrier_config

pytestmark = pytest.mark.loopback


def wait_until(check: Any, timeout: float = 5.0) -> defer.Deferred[None]:
    """Poll ``check()`` on the reactor until true; fail after ``timeout``."""

    @defer.inlineCallbacks
    def poll() -> Generator[Any, Any, None]:
        for _ in range(int(timeout / 0.01)):
            if check():
                return
            yield task.deferLater(reactor, 0.01, lambda: None)
        raise AssertionError(f"not true within {timeout} s: {check}")

    return poll()


@pytest_twisted.inlineCallbacks
def test_carrier_against_simulator_over_tcp() -> Generator[Any, Any, None]:
    """A 3-part alert goes out over TCP and each part's receipt comes back."""
    smsc = make_smsc_service(
        SmscSettings(listen="tcp:0:interface=127.0.0.1", receipt_delay=0.05), reactor
    )
    smsc.startService()
    port = yield smsc.listening
    receipts: list[ReceiptEvent] = []

    def on_receipt(e: ReceiptEvent) -> Answer:
        receipts.append(e)
        return 0

    def on_mo(e: MoEvent) -> Answer:
        return 0

    cfg = carrier_config(connect=f"tcp:host=127.0.0.1:port={port.getHost().port}")
    carrier = CarrierService(
        cfg, reactor, reactor_endpoints(reactor), on_receipt, on_mo
    )
    carrier.startService()
    try:
        pdus = compose(
            "€ 100.00 at STARBUCKS " * 15,
            "+8613800138000",
            carrier.source,
            cfg.profile,
            ref=42,
        )
        outcomes = yield defer.gatherResults([carrier.sender.submit(p) for p in pdus])
        assert len(outcomes) == len(pdus) == 3
        assert all(o.accepted for o in outcomes)
        yield wait_until(lambda: len(receipts) == 3)
        assert {r.message_id for r in receipts} == {
            carrier.resp_id(o.message_id) for o in outcomes
        }
    finally:
        yield carrier.stopService()
        yield smsc.stopService()
    assert carrier.bound == 0


def make_tls_files(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 'localhost' and its key, as PEM files.

    Returns (server.pem with key and certificate, a trust-roots folder)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    server = folder / "server.pem"
    server.write_bytes(key_pem + cert_pem)
    roots = folder / "roots"
    roots.mkdir()
    (roots / "ca.pem").write_bytes(cert_pem)
    return server, roots


@defer.inlineCallbacks
def tls_pair(
    server: Path, roots: Path, **smsc: Any
) -> Generator[Any, Any, tuple[Any, CarrierService]]:
    """Start an ssl: simulator with ``server``'s certificate and a carrier that
    connects with tls: trusting ``roots``; return both, started."""
    sim = make_smsc_service(
        SmscSettings(
            listen=f"ssl:0:interface=127.0.0.1:privateKey={server}:certKey={server}",
            **smsc,
        ),
        reactor,
    )
    sim.startService()
    port = (yield sim.listening).getHost().port
    cfg = carrier_config(
        connect=f"tls:host=localhost:port={port}:trustRoots={roots}:endpoint="
        f"tcp\\:127.0.0.1\\:{port}"
    )
    carrier = CarrierService(
        cfg, reactor, reactor_endpoints(reactor), lambda e: 0, lambda e: 0
    )
    carrier.startService()
    return sim, carrier


@pytest_twisted.inlineCallbacks
def test_tls_bind_through_endpoint_strings(tmp_path: Path) -> Generator[Any, Any, None]:
    """A carrier with a tls: endpoint string binds to an ssl: simulator and
    submits; the certificate is verified against the configured trust roots."""
    server, roots = make_tls_files(tmp_path)
    smsc, carrier = yield tls_pair(server, roots, receipts=False)
    try:
        (pdu,) = compose(
            "over TLS", "+8613800138000", carrier.source, carrier.cfg.profile
        )
        outcome = yield carrier.sender.submit(pdu)
        assert outcome.accepted
        assert smsc.factory.submits == 1
    finally:
        yield carrier.stopService()
        yield smsc.stopService()


@pytest_twisted.inlineCallbacks
def test_tls_bind_refuses_an_untrusted_smsc(
    tmp_path: Path,
) -> Generator[Any, Any, None]:
    """A certificate outside the trust roots fails the link: no bind, back-off."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    server, _ = make_tls_files(tmp_path / "a")
    _, other_roots = make_tls_files(tmp_path / "b")
    smsc, carrier = yield tls_pair(server, other_roots)
    try:
        yield wait_until(lambda: carrier.binds[0].refusals >= 1)
        assert carrier.bound == 0
        assert smsc.factory.binds_total == 0
    finally:
        yield carrier.stopService()
        yield smsc.stopService()
