"""Routing and retry policy (pure).

Routing: a destination goes to the carriers whose route prefix matches it,
longest prefix first, then lower ``priority``, then configuration order.

Retries by SMPP status class: a transient answer (throttled, queue full,
system error, not bound, timeout, connection lost) is retried after an
exponential back-off; a permanent one (invalid destination, bad source,
bad data coding and the like: the same submit would be refused again) fails
the alert at once. Codes not listed are treated as transient: the alert's
TTL bounds how long they are retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from smsgw.carrier.sender import SubmitOutcome
from smsgw.codec.constants import Status

__all__ = ["PERMANENT", "Route", "Router", "backoff", "is_permanent"]

PERMANENT = frozenset(
    int(s)
    for s in (
        Status.ESME_RINVMSGLEN,
        Status.ESME_RINVSRCADR,
        Status.ESME_RINVDSTADR,
        Status.ESME_RINVNUMDESTS,
        Status.ESME_RINVESMCLASS,
        Status.ESME_RINVSRCTON,
        Status.ESME_RINVSRCNPI,
        Status.ESME_RINVDSTTON,
        Status.ESME_RINVDSTNPI,
        Status.ESME_RINVREGDLVFLG,
        Status.ESME_RINVSCHED,
        Status.ESME_RINVEXPIRY,
        Status.ESME_RX_P_APPN,
        Status.ESME_RX_R_APPN,
        Status.ESME_RINVOPTPARSTREAM,
        Status.ESME_RINVPARLEN,
        Status.ESME_RMISSINGOPTPARAM,
        Status.ESME_RINVOPTPARAMVAL,
        Status.ESME_RINVCMDLEN,
        Status.ESME_RINVCMDID,
    )
) | {0x00000104}  # ESME_RINVDCS (SMPP 5.0 code some 3.4 SMSCs send)


def is_permanent(outcome: SubmitOutcome) -> bool:
    """True when sending the same part again cannot succeed."""
    return outcome.error is None and outcome.status in PERMANENT


def describe(outcome: SubmitOutcome) -> str:
    """A short reason for logs and ``last_error``."""
    if outcome.error is not None:
        return outcome.error
    try:
        return Status(outcome.status).name  # type: ignore[arg-type]
    except ValueError:
        return f"status 0x{outcome.status:08x}"


def backoff(attempt: int, initial: float, maximum: float) -> float:
    """Seconds before retry number ``attempt`` (1-based): initial * 2^(n-1)."""
    return min(maximum, initial * 2.0 ** max(0, attempt - 1))


@dataclass(frozen=True, slots=True)
class Route:
    """A carrier taking destinations that start with ``prefix``."""

    prefix: str
    priority: int
    order: int
    carrier: str


class Router:
    """Destination (E.164) -> carrier names to try, best first."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        self._prefixes = frozenset(r.prefix for r in self.routes)
        self._lengths = sorted({len(p) for p in self._prefixes}, reverse=True)
        # By the set of route prefixes a destination starts with: as many
        # entries as the routes make combinations, not one per destination
        # (a cache per number held ~13 MB after 65,536 numbers).
        self._by_prefixes: dict[tuple[str, ...], tuple[str, ...]] = {}

    def candidates(self, destination: str) -> tuple[str, ...]:
        """The carriers whose routes take ``destination``, best first:
        longest prefix, then priority, then configuration order."""
        n = len(destination)
        key = tuple(
            destination[:k]
            for k in self._lengths
            if k <= n and destination[:k] in self._prefixes
        )
        found = self._by_prefixes.get(key)
        if found is None:
            found = self._by_prefixes[key] = self._candidates(key)
        return found

    def _candidates(self, prefixes: tuple[str, ...]) -> tuple[str, ...]:
        matching = [r for r in self.routes if r.prefix in prefixes]
        matching.sort(key=lambda r: (-len(r.prefix), r.priority, r.order))
        names: list[str] = []
        for route in matching:
            if route.carrier not in names:
                names.append(route.carrier)
        return tuple(names)
