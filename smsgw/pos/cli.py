"""``smsgw pos``: send one transaction to the intake port, or a paced load.

    smsgw pos --amount 88.00 --msisdn +8613800138000     one txn; prints the answer
    smsgw pos --count 100000 --rate 5000 --connections 4  load; prints a summary

One transaction prints the response body as JSON on stdout and exits 0 when
it was acknowledged (``accepted`` or ``duplicate``, MAC verified), else 1. A
load prints a progress line on stderr (when it is a terminal, or with
``--progress``) and a summary on stdout; it exits 0 when every transaction
was acknowledged. Usage errors exit 2. Card numbers are only ever printed
masked (first 6 / last 4).

The lead wires this in as a subcommand: ``add_pos_arguments(subparser)`` and
``run_pos(ns, reactor)``; this module never imports the global reactor.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable, Generator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO, cast

import orjson
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import clientFromString
from twisted.internet.interfaces import (
    IReactorCore,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.python.failure import Failure

from smsgw.intake.envelope import TerminalKey
from smsgw.pos import cards
from smsgw.pos.client import IntakeClientFactory, IntakeClientProtocol
from smsgw.pos.load import LoadStats, run_load
from smsgw.pos.report import format_progress, format_summary
from smsgw.pos.txns import make_txn_body

__all__ = [
    "DEFAULT_CONNECT",
    "DEMO_KEY_HEX",
    "UsageProblem",
    "add_pos_arguments",
    "load_overrides",
    "pos_main",
    "read_key",
    "run_pos",
    "txn_body_from_args",
]

DEFAULT_CONNECT = "tcp:host=127.0.0.1:port=7400"
#: intake-v1.md's test-vector key: for demos against a demo config only.
DEMO_KEY_HEX = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
KINDS = ("purchase", "refund", "reversal", "preauth", "withdrawal")
PROGRESS_INTERVAL = 0.2  # seconds: about 5 updates a second
_CST = timezone(timedelta(hours=8))
# Transaction options: the argparse dest is the body field's name.
_TXN_FIELDS = (
    "amount", "currency", "pan", "card_token", "merchant_id", "merchant_name",
    "msisdn", "kind", "lang", "result", "orig_txn_id",
)  # fmt: skip


class UsageProblem(Exception):
    """A bad option value; the message names the option (exit status 2)."""


def add_pos_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``smsgw pos`` options to ``parser``."""
    parser.add_argument(
        "--connect",
        default=DEFAULT_CONNECT,
        metavar="ENDPOINT",
        help="Twisted client endpoint of the intake port, e.g. "
        "tls:host=gw.example:port=7400 (default: %(default)s)",
    )
    parser.add_argument(
        "--terminal", default="T1001", help="terminal id (default: %(default)s)"
    )
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument(
        "--key",
        metavar="HEX",
        help="terminal key as hex, 16 to 64 bytes (default: the DEMO key "
        "000102...1f, the spec's test vector; never use it in production)",
    )
    keys.add_argument(
        "--key-file", metavar="PATH", help="file holding the terminal key as hex"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds to wait for each response (default: %(default)s)",
    )
    txn = parser.add_argument_group(
        "transaction",
        "fields of the transaction; with --count > 1 a given field overrides "
        "the generated one in every transaction",
    )
    txn.add_argument("--amount", help="decimal amount (default: 128.50)")
    txn.add_argument("--currency", help="ISO 4217 code (default: CNY)")
    txn.add_argument(
        "--pan", help="card number (default: a generated Luhn-valid test PAN)"
    )
    txn.add_argument(
        "--card-token", help="issuer card token (instead of or with --pan)"
    )
    txn.add_argument(
        "--merchant-id", help="merchant id (default: M001, 星巴克(南京西路店))"
    )
    txn.add_argument("--merchant-name", help="merchant name shown in the alert")
    txn.add_argument("--msisdn", help="cardholder phone in E.164, e.g. +8613800138000")
    txn.add_argument(
        "--kind", choices=KINDS, help="transaction kind (default: purchase)"
    )
    txn.add_argument("--txn-id", help="transaction id (default: generated, unique)")
    txn.add_argument("--lang", help="alert language, e.g. zh or en")
    txn.add_argument("--result", choices=("approved", "declined"), help="card result")
    txn.add_argument("--orig-txn-id", help="original txn_id (refund, reversal)")
    load = parser.add_argument_group("load")
    load.add_argument(
        "--count", type=int, default=1, help="transactions to send (>1: a load run)"
    )
    load.add_argument(
        "--rate", type=float, help="transactions per second (default: window-bound)"
    )
    load.add_argument(
        "--connections", type=int, default=1, help="connections (default: 1)"
    )
    load.add_argument(
        "--window",
        type=int,
        default=10,
        help="most requests outstanding per connection (default: %(default)s)",
    )
    load.add_argument("--seed", type=int, help="random seed for generated data")
    load.add_argument(
        "--progress",
        action="store_true",
        help="show the progress line even when stderr is not a terminal",
    )


def read_key(args: argparse.Namespace) -> TerminalKey:
    """The terminal key from --key, --key-file or the demo default.

    Raises UsageProblem naming the option (never showing the key).
    """
    if args.key_file:
        option = "--key-file"
        try:
            text = Path(args.key_file).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise UsageProblem(
                f"--key-file: cannot read {args.key_file}: {e}"
            ) from None
    elif args.key is not None:
        option, text = "--key", args.key.strip()
    else:
        option, text = "--key", DEMO_KEY_HEX
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise UsageProblem(f"{option}: the key must be hex digits") from None
    if not 16 <= len(secret) <= 64:
        raise UsageProblem(
            f"{option}: the key must be 16 to 64 bytes, got {len(secret)}"
        )
    return TerminalKey(secret)


def _check_numbers(args: argparse.Namespace) -> None:
    """Raise UsageProblem for load options out of range."""
    if args.count < 1:
        raise UsageProblem(f"--count must be at least 1, got {args.count}")
    if args.rate is not None and not args.rate > 0:
        raise UsageProblem(f"--rate must be above 0, got {args.rate:g}")
    if args.connections < 1:
        raise UsageProblem(f"--connections must be at least 1, got {args.connections}")
    if args.window < 1:
        raise UsageProblem(f"--window must be at least 1, got {args.window}")
    if not args.timeout > 0:
        raise UsageProblem(f"--timeout must be above 0, got {args.timeout:g}")
    if args.count > 1 and args.txn_id is not None:
        raise UsageProblem("--txn-id applies to one transaction, not --count > 1")


def _rfc3339(now: float) -> str:
    return datetime.fromtimestamp(int(now), tz=_CST).isoformat(timespec="seconds")


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def txn_body_from_args(
    args: argparse.Namespace, rng: random.Random, now: float
) -> dict[str, Any]:
    """The one transaction the options describe, with demo defaults filled in.

    Values are sent as given (the simulator can send invalid data on purpose).
    Returns the ``txn`` body.
    """
    given = load_overrides(args)
    body: dict[str, Any] = {
        "type": "txn",
        "txn_id": args.txn_id or f"{args.terminal}-{_base36(int(now * 1000))}",
        "ts": int(now),
        "kind": "purchase",
        "amount": "128.50",
        "currency": "CNY",
        "merchant_id": "M001",
        "time": _rfc3339(now),
    }
    if args.merchant_id is None:
        body["merchant_name"] = "星巴克(南京西路店)"
    if args.pan is None and args.card_token is None:
        body["pan"] = cards.test_pan(rng)
    body.update(given)
    return body


def load_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The transaction fields given on the command line. Returns a new dict."""
    return {f: getattr(args, f) for f in _TXN_FIELDS if getattr(args, f) is not None}


def _masker(pan: object) -> Callable[[str], str]:
    """A function hiding ``pan`` in text (identity when there is none)."""
    if not isinstance(pan, str) or not pan:
        return lambda text: text
    masked = cards.mask_pan(pan)
    return lambda text: text.replace(pan, masked)


def pos_main(
    args: argparse.Namespace,
    clock: IReactorTime,
    endpoint: IStreamClientEndpoint,
    *,
    out: TextIO,
    err: TextIO,
    live: list[LoadStats] | None = None,
) -> Deferred[int]:
    """Run ``smsgw pos`` on ``clock`` through ``endpoint``.

    Returns a Deferred firing with the exit status (0 acknowledged, 1 not,
    2 usage). A load appends its live stats to ``live`` (for an interrupt).
    """
    try:
        key = read_key(args)
        _check_numbers(args)
    except UsageProblem as e:
        err.write(f"smsgw pos: {e}\n")
        d: Deferred[int] = Deferred()
        d.callback(2)
        return d
    factory = IntakeClientFactory(args.terminal, key, clock, timeout=args.timeout)
    if args.count == 1:
        return _one(args, clock, endpoint, factory, out, err)
    return _load(args, clock, endpoint, factory, key, out, err, live)


@inlineCallbacks
def _one(
    args: argparse.Namespace,
    clock: IReactorTime,
    endpoint: IStreamClientEndpoint,
    factory: IntakeClientFactory,
    out: TextIO,
    err: TextIO,
) -> Generator[Deferred[Any], Any, int]:
    rng = random.Random(args.seed)
    body = txn_body_from_args(args, rng, clock.seconds())
    mask = _masker(body.get("pan"))
    card = body.get("card_token") or cards.mask_pan(str(body.get("pan", "")))
    err.write(
        mask(
            f"{args.terminal} -> {args.connect}: txn {body['txn_id']} {body['kind']} "
            f"{body['amount']} {body['currency']} card {card}\n"
        )
    )
    try:
        proto = yield endpoint.connect(factory)
    except Exception as e:
        err.write(f"smsgw pos: cannot connect to {args.connect}: {e}\n")
        return 1
    try:
        response = yield proto.send(body)
    except Exception as e:
        err.write(mask(f"smsgw pos: no usable response: {e}\n"))
        return 1
    finally:
        proto.close()
    out.write(mask(orjson.dumps(response.body).decode("utf-8")) + "\n")
    if response.mac_null:
        err.write("smsgw pos: the response has no MAC: untrusted, not an ack\n")
    return 0 if response.accepted else 1


def _load(
    args: argparse.Namespace,
    clock: IReactorTime,
    endpoint: IStreamClientEndpoint,
    factory: IntakeClientFactory,
    key: TerminalKey,
    out: TextIO,
    err: TextIO,
    live: list[LoadStats] | None,
) -> Deferred[int]:
    rng = random.Random(args.seed)
    run_id = _base36(int(clock.seconds() * 1000))
    overrides = load_overrides(args)
    mask = _masker(overrides.get("pan"))
    show = args.progress or err.isatty()

    def make_body(i: int) -> dict[str, Any]:
        body = make_txn_body(
            i, rng, terminal=args.terminal, now=clock.seconds(), run_id=run_id
        )
        if overrides:
            body.update(overrides)
            if "card_token" in overrides and "pan" not in overrides:
                del body["pan"]
        return body

    def connect() -> Deferred[IntakeClientProtocol]:
        return cast("Deferred[IntakeClientProtocol]", endpoint.connect(factory))

    def progress(stats: LoadStats) -> None:
        if live is not None and not live:
            live.append(stats)
        if show:
            err.write("\r" + format_progress(stats))
            err.flush()

    rate = f"{args.rate:g}/s" if args.rate else "window-bound"
    err.write(
        f"{args.terminal} -> {args.connect}: {args.count} txns, {rate}, "
        f"{args.connections} connection(s), window {args.window}\n"
    )
    d = run_load(
        clock,
        connect,
        count=args.count,
        rate=args.rate,
        connections=args.connections,
        window=args.window,
        terminal=args.terminal,
        key=key,
        make_body=make_body,
        progress=progress,
        progress_interval=PROGRESS_INTERVAL,
    )

    def finished(stats: LoadStats) -> int:
        if show:
            err.write("\n")
        out.write(mask(format_summary(stats)))
        ok = stats.by_status["accepted"] + stats.by_status["duplicate"]
        return 0 if ok == stats.count else 1

    def failed(failure: Failure) -> int:
        err.write(f"smsgw pos: load failed: {failure.getErrorMessage()}\n")
        return 1

    return d.addCallbacks(finished, failed)


def run_pos(
    args: argparse.Namespace,
    reactor: IReactorCore,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run ``smsgw pos`` on ``reactor`` until it is done; return the exit status.

    Runs (and stops) the reactor. On an interrupt during a load the partial
    summary is printed and the status is 1.
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    try:
        endpoint = clientFromString(reactor, args.connect)
    except (ValueError, TypeError, KeyError) as e:
        err.write(f"smsgw pos: --connect {args.connect!r}: {e}\n")
        return 2
    clock = IReactorTime(reactor)
    status: list[int] = []
    live: list[LoadStats] = []

    def start() -> None:
        d = pos_main(args, clock, endpoint, out=out, err=err, live=live)
        d.addErrback(crashed)
        d.addCallback(stop)

    def crashed(failure: Failure) -> int:
        err.write(f"smsgw pos: internal error:\n{failure.getTraceback()}")
        return 1

    def stop(code: int) -> None:
        status.append(code)
        if reactor.running:
            reactor.stop()

    def interrupted() -> None:
        if not status and live:
            err.write("\n")
            out.write(format_summary(live[0], interrupted=True))

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", interrupted)
    reactor.run()
    return status[0] if status else 1
