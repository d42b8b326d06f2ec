"""Settings of the built-in SMSC simulator, and their command-line options.

``SmscSettings`` is validated when built, so a bad value fails at startup with
every problem named. ``add_smsc_arguments(parser)`` and ``settings_from_args(ns)``
are what ``smsgw smsc`` and the ``smsgw-smsc`` twistd plugin share.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from typing import Literal

from typing_extensions import override

from smsgw.codec.constants import RECEIPT_STAT

# Receipt states the simulator can report (SMPP 3.4 Appendix B, §5.2.28).
RECEIPT_STATES: dict[str, int] = RECEIPT_STAT

IdFormat = Literal["decimal", "hex"]


@dataclass(frozen=True, slots=True)
class SmscSettings:
    """What the simulator listens on, whom it accepts, and how it answers.

    Raises ValueError listing every invalid field when built.
    """

    listen: str = "tcp:2775:interface=127.0.0.1"
    control: str | None = None
    accounts: tuple[tuple[str, str], ...] = (("smsgw", "secret"),)
    id_format: IdFormat = "decimal"
    receipt_delay: float = 0.5
    receipt_state: str = "DELIVRD"
    receipts: bool = True
    receipt_tlvs: bool = True
    throttle_fraction: float = 0.0
    max_tps: float | None = None
    seed: int | None = None
    keep_received: int = 10000
    max_pdu: int = 65536
    # Beyond the brief's list: an info event per received submit (and a debug
    # event per other PDU); how many message states query_sm/cancel_sm can see;
    # how many receipts/MOs are held per system_id while no receiver is bound.
    log_received: bool = False
    keep_messages: int = 100_000
    max_held: int = 10_000

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    @override
    def __repr__(self) -> str:
        # Never show passwords (style guide §8).
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "accounts":
                value = tuple((sid, "***") for sid, _ in value)
            shown.append(f"{f.name}={value!r}")
        return f"SmscSettings({', '.join(shown)})"


def _problems(s: SmscSettings) -> list[str]:
    out: list[str] = []
    if not s.listen:
        out.append("listen: must be an endpoint string")
    if s.control is not None and not s.control:
        out.append("control: must be an endpoint string or None")
    if not s.accounts:
        out.append("accounts: at least one (system_id, password) is required")
    for i, (system_id, password) in enumerate(s.accounts):
        # SMPP 3.4 §5.2.1/§5.2.2: system_id at most 15 octets, password 8.
        if not system_id or len(system_id) > 15 or not system_id.isascii():
            out.append(f"accounts[{i}].system_id: 1..15 ASCII characters")
        if len(password) > 8 or not password.isascii():
            out.append(f"accounts[{i}].password: at most 8 ASCII characters")
    if s.id_format not in ("decimal", "hex"):
        out.append(f"id_format: 'decimal' or 'hex', got {s.id_format!r}")
    if not s.receipt_delay >= 0:
        out.append(f"receipt_delay: must be >= 0, got {s.receipt_delay!r}")
    if s.receipt_state not in RECEIPT_STATES:
        allowed = ", ".join(RECEIPT_STATES)
        out.append(f"receipt_state: one of {allowed}, got {s.receipt_state!r}")
    if not 0.0 <= s.throttle_fraction <= 1.0:
        out.append(f"throttle_fraction: 0..1, got {s.throttle_fraction!r}")
    if s.max_tps is not None and not s.max_tps > 0:
        out.append(f"max_tps: must be > 0 or None, got {s.max_tps!r}")
    for name in ("keep_received", "keep_messages", "max_held"):
        if getattr(s, name) < 0:
            out.append(f"{name}: must be >= 0, got {getattr(s, name)!r}")
    if s.max_pdu < 16:
        out.append(f"max_pdu: must be >= 16, got {s.max_pdu!r}")
    return out


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within 0..1, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def add_smsc_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to ``parser`` (defaults from SmscSettings)."""
    d = SmscSettings()
    sid, pw = d.accounts[0]
    parser.add_argument(
        "--listen", default=d.listen, help="SMPP endpoint (default: %(default)s)"
    )
    parser.add_argument(
        "--control",
        default=d.control,
        help="HTTP control endpoint, e.g. tcp:8775:interface=127.0.0.1 (default: off)",
    )
    parser.add_argument(
        "--system-id", default=sid, help="accepted system_id (default: %(default)s)"
    )
    parser.add_argument("--password", default=pw, help="accepted password")
    parser.add_argument(
        "--id-format",
        choices=("decimal", "hex"),
        default=d.id_format,
        help="message_id format (default: %(default)s)",
    )
    parser.add_argument(
        "--receipt-delay",
        type=_non_negative,
        default=d.receipt_delay,
        help="seconds from submit to receipt (default: %(default)s)",
    )
    parser.add_argument(
        "--receipt-state",
        choices=tuple(RECEIPT_STATES),
        default=d.receipt_state,
        help="stat: of every receipt (default: %(default)s)",
    )
    parser.add_argument(
        "--no-receipts",
        dest="receipts",
        action="store_false",
        help="never send delivery receipts",
    )
    parser.add_argument(
        "--no-receipt-tlvs",
        dest="receipt_tlvs",
        action="store_false",
        help="receipts carry the text only, no receipted_message_id/message_state",
    )
    parser.add_argument(
        "--throttle-fraction",
        type=_fraction,
        default=d.throttle_fraction,
        help="fraction of submits answered ESME_RTHROTTLED (default: %(default)s)",
    )
    parser.add_argument(
        "--max-tps",
        type=_positive,
        default=d.max_tps,
        help="per-bind submit rate above which ESME_RTHROTTLED is answered",
    )
    parser.add_argument(
        "--seed", type=int, default=d.seed, help="seed of the throttle's random"
    )
    parser.add_argument(
        "--log-received",
        action="store_true",
        help="log every received submit (info: numbers masked, the message as "
        "hex) and every other PDU (debug)",
    )


def settings_from_args(ns: argparse.Namespace) -> SmscSettings:
    """Build SmscSettings from options parsed by ``add_smsc_arguments``.

    Raises ValueError naming every invalid value.
    """
    return SmscSettings(
        listen=ns.listen,
        control=ns.control,
        accounts=((ns.system_id, ns.password),),
        id_format=ns.id_format,
        receipt_delay=ns.receipt_delay,
        receipt_state=ns.receipt_state,
        receipts=getattr(ns, "receipts", True),
        receipt_tlvs=ns.receipt_tlvs,
        throttle_fraction=ns.throttle_fraction,
        max_tps=ns.max_tps,
        seed=ns.seed,
        log_received=ns.log_received,
    )
