"""Foreground runs behind the ``smsgw`` CLI (they own the global reactor)."""

from __future__ import annotations

import contextlib
import re
import sys
from pathlib import Path
from typing import TextIO

from twisted.internet import defer, reactor, task
from twisted.internet.interfaces import IListeningPort
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)

from smsgw.carrier.compose import compose
from smsgw.carrier.deliveries import Answer, MoEvent, ReceiptEvent
from smsgw.carrier.sender import SubmitOutcome
from smsgw.carrier.service import CarrierService, reactor_endpoints
from smsgw.codec.constants import status_name
from smsgw.codec.segment import TooManyPartsError
from smsgw.runtime import tune_gc
from smsgw.service.config import ConfigError, load_config
from smsgw.smsc.service import make_smsc_service
from smsgw.smsc.settings import SmscSettings

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def _log_to_stdout(level: str) -> None:
    observer = FilteringLogObserver(
        textFileLogObserver(sys.stdout),
        [LogLevelFilterPredicate(defaultLogLevel=LogLevel.levelWithName(level))],
    )
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def run_smsc(settings: SmscSettings, *, port_file: str | None, log_level: str) -> int:
    """Run the simulator until interrupted; return the exit status."""
    _log_to_stdout(log_level)
    service = make_smsc_service(settings, reactor)

    def started() -> None:
        service.startService()
        if port_file:

            def write(port: IListeningPort) -> None:
                Path(port_file).write_text(str(port.getHost().port))  # type: ignore[attr-defined]

            service.listening.addCallback(write)

    reactor.callWhenRunning(started)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    tune_gc()
    reactor.run()
    return 0


def run_send_test(
    config: str, to: str, text: str, *, carrier: str | None, wait: float, out: TextIO
) -> int:
    """Send one message through a configured carrier; 0 when every part
    was accepted and delivered within ``wait`` seconds."""
    try:
        cfg = load_config(config)
    except FileNotFoundError:
        print(f"smsgw send-test: config file not found: {config}", file=sys.stderr)
        return 2
    except ConfigError as e:
        print(f"smsgw send-test: invalid config {config}:\n{e}", file=sys.stderr)
        return 2
    if not E164.match(to):
        print(
            f"smsgw send-test: --to must be E.164 (+ and 7-15 digits), got {to!r}",
            file=sys.stderr,
        )
        return 2
    enabled = [c for c in cfg.carriers if c.enabled]
    chosen = [c for c in enabled if carrier is None or c.name == carrier]
    if not chosen:
        names = ", ".join(c.name for c in enabled)
        print(
            f"smsgw send-test: no enabled carrier {carrier!r} (have: {names})",
            file=sys.stderr,
        )
        return 2
    receipts: dict[str, ReceiptEvent] = {}

    def on_receipt(event: ReceiptEvent) -> Answer:
        receipts[event.message_id] = event
        return 0

    def on_mo(event: MoEvent) -> Answer:
        return 0

    service = CarrierService(
        chosen[0],
        reactor,
        reactor_endpoints(reactor),
        on_receipt,
        on_mo,
    )
    try:
        pdus = compose(text, to, service.source, chosen[0].profile, ref=1)
    except TooManyPartsError as e:
        print(f"smsgw send-test: {e}", file=sys.stderr)
        return 2

    @defer.inlineCallbacks
    def send(_: object):  # type: ignore[no-untyped-def]
        service.startService()
        deadline = reactor.seconds() + wait
        outcomes: list[SubmitOutcome] = yield defer.gatherResults(
            [service.sender.submit(p, deadline) for p in pdus]
        )
        ids = [
            service.resp_id(o.message_id)
            for o in outcomes
            if o.accepted and o.message_id
        ]
        while reactor.seconds() < deadline and not all(
            i in receipts and receipts[i].receipt.final for i in ids
        ):
            yield task.deferLater(reactor, 0.05, lambda: None)
        yield service.stopService()
        ok = len(ids) == len(pdus)
        for n, o in enumerate(outcomes, 1):
            if not o.accepted:
                why = o.error or status_name(o.status or 0)
                print(f"part {n}/{len(pdus)}: not accepted ({why})", file=out)
                continue
            rid = service.resp_id(o.message_id or "")
            r = receipts.get(rid)
            state = (
                r.receipt.state
                if r
                else f"no receipt here within {wait:g} s (an SMSC may deliver it "
                "to another bind of the same system_id)"
            )
            ok = ok and r is not None and r.receipt.delivered
            print(f"part {n}/{len(pdus)}: message_id={o.message_id} {state}", file=out)
        return 0 if ok else 1

    result: list[int] = []

    def main(_: object) -> defer.Deferred[None]:
        d = send(None)
        d.addCallback(result.append)
        return d

    with contextlib.suppress(SystemExit):
        task.react(main)
    return result[0] if result else 1
