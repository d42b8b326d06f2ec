"""``smsgw test-certs`` and the start-up check of the intake's TLS files."""

from __future__ import annotations

import dataclasses
import io
import stat
from argparse import Namespace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from smsgw.service.testcerts import _run
from tests.service.test_gateway import first_run_config


def test_test_certs_writes_a_ca_server_and_pinned_terminals(tmp_path: Path) -> None:
    """The printed cert_sha256 of each terminal is its certificate's SHA-256; the
    keys are private files; the terminal certificate chains to the CA."""
    out = io.StringIO()
    assert (
        _run(Namespace(out=str(tmp_path), terminal=["T7"], host="localhost"), out) == 0
    )
    pem = (tmp_path / "terminal-T7.pem").read_bytes()
    cert = x509.load_pem_x509_certificate(pem[pem.index(b"-----BEGIN CERTIFICATE") :])
    assert f"cert_sha256: {cert.fingerprint(hashes.SHA256()).hex()}" in out.getvalue()
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    assert cert.issuer == ca.subject
    for name in ("ca-key.pem", "server.pem", "terminal-T7.pem"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert "client_ca:" in out.getvalue()


def test_preflight_names_an_unusable_client_ca(tmp_path: Path) -> None:
    """A client CA file that is missing stops the start with one line."""
    from smsgw.service.config import IntakeConfig
    from smsgw.service.tap import preflight

    cfg = first_run_config(tmp_path)
    _run(
        Namespace(out=str(tmp_path / "tls"), terminal=None, host="localhost"),
        io.StringIO(),
    )
    cfg = dataclasses.replace(
        cfg,
        intake=IntakeConfig(
            listen=f"ssl:0:privateKey={tmp_path / 'tls' / 'server.pem'}",
            client_ca=tmp_path / "nope.pem",
        ),
    )
    problem = preflight(cfg)
    assert problem is not None
    assert problem.startswith("intake TLS: client_ca ")
    assert "No such file" in problem
