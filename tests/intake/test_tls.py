"""Intake over TLS with client certificates (real reactor, 127.0.0.1, port 0):
a certificate is required, and binds the terminals it may speak for."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_twisted
from twisted.internet import defer, reactor, ssl
from twisted.internet.endpoints import SSL4ClientEndpoint
from twisted.internet.protocol import Factory
from twisted.protocols.basic import Int32StringReceiver

from smsgw.intake.decide import Intake
from smsgw.intake.envelope import TerminalKey
from smsgw.intake.protocol import IntakeFactory
from smsgw.intake.terminals import Terminal
from smsgw.intake.tls import TlsConfigError, intake_endpoint, parse_listen
from smsgw.service.testcerts import make_test_certs
from tests.intake.test_protocol import KEY, NOW, FakeAcceptor, Hasher, frame, txn_body

pytestmark = pytest.mark.loopback


class TlsTerminal(Int32StringReceiver):
    """A terminal's client: sends frames, collects answers."""

    def __init__(self) -> None:
        self.answers: list[dict[str, Any]] = []
        self.got: defer.Deferred[None] | None = None
        self.lost: defer.Deferred[None] = defer.Deferred()

    def stringReceived(self, string: bytes) -> None:
        envelope = orjson.loads(string)
        self.answers.append(orjson.loads(envelope["body"]))
        if self.got is not None and not self.got.called:
            self.got.callback(None)

    def ask(self, data: bytes) -> defer.Deferred[None]:
        self.got = defer.Deferred()
        self.transport.write(data)  # type: ignore[union-attr]
        return self.got

    def connectionLost(self, reason: Any = None) -> None:
        if not self.lost.called:
            self.lost.callback(None)


def _intake(prints: dict[str, str]) -> Intake:
    def terminal(tid: str, pin: str | None) -> Terminal:
        return Terminal(
            tid, (TerminalKey(KEY),), True, True, None, None, cert_sha256=pin
        )

    terminals = {
        "T1": terminal("T1", prints["T1"]),
        "T2": terminal("T2", prints["T2"]),
        "T3": terminal("T3", None),  # any certificate from the CA
    }

    class Clock:
        @staticmethod
        def seconds() -> float:
            return NOW

        @staticmethod
        def callLater(*a: Any, **kw: Any) -> Any:
            return reactor.callLater(*a, **kw)

    return Intake(terminals, FakeAcceptor(), Hasher(), Clock(), max_skew=300)  # type: ignore[arg-type]


def _client(folder: Path, cert: str | None, **options: Any) -> Any:
    ca = ssl.Certificate.loadPEM((folder / "ca.pem").read_bytes())
    client_cert = None
    if cert is not None:
        client_cert = ssl.PrivateCertificate.loadPEM((folder / cert).read_bytes())
    return ssl.optionsForClientTLS(
        "localhost", trustRoot=ca, clientCertificate=client_cert, **options
    )


@pytest_twisted.inlineCallbacks
def test_client_certificates_are_required_and_bound_to_their_terminals(
    tmp_path: Path,
) -> Generator[Any, Any, None]:
    """T1's certificate sends as T1 and as the unpinned T3, never as T2; no
    certificate, or TLS below 1.2, gets no connection at all."""
    prints = make_test_certs(tmp_path, ["T1", "T2"])
    server = tmp_path / "server.pem"
    intake = _intake(prints)
    endpoint = intake_endpoint(
        reactor,
        f"ssl:0:interface=127.0.0.1:privateKey={server}",
        tmp_path / "ca.pem",
    )
    port = yield endpoint.listen(
        IntakeFactory(intake, reactor, max_frame=65536, idle_timeout=30.0)
    )
    number = port.getHost().port
    connected: list[TlsTerminal] = []
    try:

        def connect(cert: str | None, **options: Any) -> defer.Deferred[TlsTerminal]:
            ep = SSL4ClientEndpoint(
                reactor, "127.0.0.1", number, _client(tmp_path, cert, **options)
            )
            return ep.connect(Factory.forProtocol(TlsTerminal))

        t1 = yield connect("terminal-T1.pem")
        connected.append(t1)
        yield t1.ask(frame(txn_body("a"), terminal="T1"))
        yield t1.ask(frame(txn_body("b"), terminal="T2"))
        yield t1.ask(frame(txn_body("c"), terminal="T3"))
        accepted, refused, any_ca = t1.answers
        assert accepted["status"] == "accepted"
        assert refused["code"] == "unknown_terminal"
        assert "its client certificate is another one" in refused["message"]
        assert any_ca["status"] == "accepted"
        t2 = yield connect("terminal-T2.pem")
        connected.append(t2)
        yield t2.ask(frame(txn_body("d"), terminal="T2"))
        assert t2.answers[0]["status"] == "accepted"

        for cert, options in (
            (None, {}),
            ("terminal-T1.pem", {"extraCertificateOptions": {
                "lowerMaximumSecurityTo": ssl.TLSVersion.TLSv1_1,
                "insecurelyLowerMinimumTo": ssl.TLSVersion.TLSv1_0,
            }}),
        ):  # fmt: skip
            try:
                bare = yield connect(cert, **options)
            except Exception:
                continue  # refused during the handshake: as it should
            bare.transport.write(frame(txn_body("e"), terminal="T3"))
            yield bare.lost
            assert bare.answers == []
    finally:
        for c in connected:
            c.transport.loseConnection()
        yield port.stopListening()


def test_listen_strings_and_bad_files(tmp_path: Path) -> None:
    """The ssl: string is read as Twisted reads it (\\: inside values); missing
    or unusable files are named."""
    assert parse_listen(r"ssl:7401:interface=0.0.0.0:privateKey=C\:/k.pem") == (
        "ssl",
        ["7401"],
        {"interface": "0.0.0.0", "privateKey": "C:/k.pem"},
    )
    make_test_certs(tmp_path, ["T1"])
    listen = f"ssl:0:privateKey={tmp_path / 'server.pem'}"
    with pytest.raises(TlsConfigError, match=r"client_ca .*missing\.pem"):
        intake_endpoint(reactor, listen, tmp_path / "missing.pem")
    (tmp_path / "empty.pem").write_text("nothing")
    with pytest.raises(TlsConfigError, match="no PEM certificate"):
        intake_endpoint(reactor, listen, tmp_path / "empty.pem")
    with pytest.raises(TlsConfigError, match="needs an ssl: listener"):
        intake_endpoint(reactor, "tcp:0", tmp_path / "ca.pem")


def test_a_pinned_terminal_is_unknown_without_its_certificate() -> None:
    """Over plain TCP (no certificate) or another certificate, a terminal pinned
    with cert_sha256 is answered unknown_terminal, unsigned; the right one passes."""
    intake = _intake({"T1": "ab" * 32, "T2": "cd" * 32})
    for peer in (None, "cd" * 32):
        answer = intake.handle(frame(txn_body("x"), terminal="T1")[4:], peer)
        assert isinstance(answer, bytes)
        envelope = orjson.loads(answer[4:])
        body = orjson.loads(envelope["body"])
        assert (body["code"], envelope["mac"]) == ("unknown_terminal", None)
    ok = intake.handle(frame(txn_body("y"), terminal="T1")[4:], "ab" * 32)
    assert not isinstance(ok, bytes)  # on to the store
