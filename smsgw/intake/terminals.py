"""Terminals as the intake sees them: keys keyed once, a rate limiter each.

Built from the configuration only (terminal keys never live in the
database). The rate limiter is per terminal, shared by all its connections.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from smsgw.intake.envelope import TerminalKey
from smsgw.service.config import TerminalConfig
from smsgw.session.throttle import TokenBucket


@dataclass(slots=True)
class Terminal:
    """One configured terminal, ready to verify requests."""

    id: str
    keys: tuple[TerminalKey, ...]
    enabled: bool
    may_supply_msisdn: bool
    issuer: str | None
    rate: float | None
    bucket: TokenBucket | None = field(default=None, repr=False)
    # With a client-CA listener: the SHA-256 fingerprint (lowercase hex) of
    # the only client certificate that may speak for this terminal.
    cert_sha256: str | None = None

    def allow(self, now: float) -> bool:
        """Take one request from the terminal's rate budget; False when over."""
        if self.rate is None:
            return True
        if self.bucket is None:
            # A second's worth of burst: a terminal may catch up after a pause.
            self.bucket = TokenBucket(self.rate, max(1.0, self.rate), now)
        return self.bucket.take(now)


def terminals_from_config(configs: Iterable[TerminalConfig]) -> dict[str, Terminal]:
    """Terminal id -> Terminal, each key decoded and keyed into HMAC once."""
    return {
        c.id: Terminal(
            id=c.id,
            keys=tuple(TerminalKey(k) for k in c.keys.reveal()),
            enabled=c.enabled,
            may_supply_msisdn=c.may_supply_msisdn,
            issuer=c.issuer,
            rate=c.rate,
            cert_sha256=c.cert_sha256,
        )
        for c in configs
    }
