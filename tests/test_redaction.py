"""The redaction proof (issue 5): a load with realistic card numbers and phone
numbers through a real gateway process, with replies (not me, STOP, HELP,
free text), an enrolled subscriber, a merchant with numbers to notify and a
fraud webhook; then the database files, the gateway's debug log and every
SMPP PDU both ways are scanned. No full PAN may appear anywhere, and no
phone number anywhere except in the SMPP address fields that must carry it
(a submit_sm's destination_addr, an MO deliver_sm's source_addr).

Each number is looked for in its E.164 digits and its national form, as
ASCII and as UCS-2.
"""

from __future__ import annotations

import dataclasses
import random
import signal
import struct
import subprocess
import sys
from collections import defaultdict
from collections.abc import Generator
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web.server import Site

from smsgw.codec import pdu as P
from smsgw.pos import cards
from smsgw.smsc.protocol import SmscProtocol
from tests.gateway_harness import body, connect, start
from tests.test_loopback import wait_until
from tests.test_replies_e2e import FEEDBACK, SECRET, Fraud, _rows

pytestmark = [pytest.mark.slow, pytest.mark.loopback]

# Mobile ranges of several countries: the gateway normalises each to E.164.
_PREFIXES = ["+86138", "+86159", "+86186", "+1415555", "+447700", "+4915112"]


def _numbers(rng: random.Random, n: int) -> list[str]:
    out: set[str] = set()
    while len(out) < n:
        prefix = rng.choice(_PREFIXES)
        length = {"+86": 14, "+1": 12, "+44": 13, "+49": 14}[
            next(p for p in ("+86", "+1", "+44", "+49") if prefix.startswith(p))
        ]
        number = prefix + "".join(
            rng.choice("0123456789") for _ in range(length - len(prefix))
        )
        if phonenumbers.is_possible_number(phonenumbers.parse(number)):
            out.add(number)
    return sorted(out)


def _forms(number: str) -> list[bytes]:
    """How a number could leak: E.164 digits and the national number, in ASCII
    and UCS-2 (the plus sign is left out, so "+8613..." is covered too)."""
    parsed = phonenumbers.parse(number)
    texts = {number[1:], str(parsed.national_number)}
    return [t.encode(enc) for t in texts for enc in ("ascii", "utf-16-be")]


class Wire:
    """Every byte the SMSC simulator read and wrote, per connection."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.streams: dict[tuple[int, str], bytearray] = defaultdict(bytearray)
        made, received = SmscProtocol.connectionMade, SmscProtocol.dataReceived

        def connection_made(proto: SmscProtocol) -> None:
            made(proto)
            write = proto._transport.write  # type: ignore[union-attr]

            def recorded(data: bytes) -> None:
                self.streams[(id(proto), "out")] += data
                write(data)

            proto._transport.write = recorded  # type: ignore[union-attr,method-assign]

        def data_received(proto: SmscProtocol, data: bytes) -> None:
            self.streams[(id(proto), "in")] += data
            received(proto, data)

        monkeypatch.setattr(SmscProtocol, "connectionMade", connection_made)
        monkeypatch.setattr(SmscProtocol, "dataReceived", data_received)

    def pdus(self) -> list[tuple[str, P.Pdu]]:
        """("in" or "out", PDU) for every whole frame of every connection."""
        out = []
        for (_, way), stream in self.streams.items():
            pos = 0
            while pos + 4 <= len(stream):
                (length,) = struct.unpack_from(">I", stream, pos)
                if pos + length > len(stream):
                    break
                out.append((way, P.decode(bytes(stream[pos : pos + length]))))
                pos += length
        return out


def _fields(pdu: P.Pdu, allowed: str) -> tuple[bytes, bytes]:
    """(the address field that may carry a number, every other field's bytes)."""
    address = b""
    rest = []
    for f in dataclasses.fields(pdu):
        value = getattr(pdu, f.name)
        if f.name == allowed:
            address = value.encode()
        elif f.name == "tlvs":
            rest.extend(v for _, v in value)
        elif isinstance(value, str):
            rest.append(value.encode())
        elif isinstance(value, bytes):
            rest.append(value)
    return address, b"|".join(rest)


def _cli(folder: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "smsgw.cli", *args, "--config", "smsgw.yaml"],
        cwd=folder,
        check=True,
        capture_output=True,
    )


@pytest_twisted.inlineCallbacks
def test_no_pan_and_no_number_in_clear_outside_the_address_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Generator[Any, Any, None]:
    """The whole redaction proof (see the module docstring)."""
    wire = Wire(monkeypatch)
    fraud = Fraud()
    site = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        Site(fraud)
    )
    extra = FEEDBACK.format(port=site.getHost().port, secret=SECRET)
    sim, gw = yield start(tmp_path, level="debug", extra=extra)
    try:
        rng = random.Random(5)
        count = 80
        pans = [
            cards.test_pan(
                rng,
                bin=rng.choice(["622202", "458123", "356999", "520000"]),
                length=rng.choice([13, 15, 16, 19]),
            )
            for _ in range(count)
        ]
        numbers = _numbers(rng, count + 3)
        enrolled, merchant_a, merchant_b = numbers[count:]
        # One card enrolled (its alert goes to the registry's number), and a
        # merchant notified of each of its transactions at two numbers.
        _cli(tmp_path, "subscribers", "add", "--pan", pans[0], "--msisdn", enrolled)
        _cli(
            tmp_path, "merchants", "add", "--merchant-id", "M002", "--name", "Shop",
            "--notify", merchant_a, "--notify", merchant_b,
        )  # fmt: skip
        accepted: set[str] = set()
        [client] = yield connect(gw, accepted, 1)
        now = int(reactor.seconds())
        for i, (pan, number) in enumerate(zip(pans, numbers[:count], strict=True)):
            b = body(0, i, now, pan=pan)
            b["msisdn"] = number
            if i == 0:
                del b["msisdn"]  # the enrolled card: the registry's number
            if i % 10 == 1:
                b["merchant_id"] = "M002"
            client.send(b)
        yield wait_until(lambda: len(accepted) == count, timeout=60)
        expected = count + 2 * len(range(1, count, 10))
        yield wait_until(
            lambda: gw.alerts().get("delivered", 0) == expected, timeout=60
        )
        # Replies: not me (a dispute, an acknowledgement, a webhook), STOP,
        # HELP, free text, and one from a number the gateway never wrote to.
        replies = {2: "N", 3: "STOP", 4: "HELP", 5: "who is this?", 6: "不是我"}
        for i, text in replies.items():
            sim.factory.inject_mo(
                numbers[i],
                "95588",
                text,
                encoding="ucs2" if text == "不是我" else "gsm7",
            )
        stranger = _numbers(random.Random(99), 1)[0]
        sim.factory.inject_mo(stranger, "95588", "Y")
        yield wait_until(
            lambda: (
                len(_rows(tmp_path, "SELECT id FROM mo_messages")) == len(replies) + 1
            ),
            timeout=30,
        )
        yield wait_until(lambda: len(fraud.posts) == 2, timeout=30)
        yield wait_until(
            lambda: gw.alerts().get("delivered", 0) >= expected + 4, timeout=30
        )  # two acknowledgements, the STOP confirmation, the HELP text
        client.transport.loseConnection()
        yield gw.kill(signal.SIGTERM)

        stored = {
            path.name: path.read_bytes()
            for path in [*(tmp_path / "data").glob("smsgw.db*"), gw.log_path]
        }
        assert set(stored) >= {"smsgw.db", "gateway.log"}
        addressed: list[tuple[str, bytes, bytes]] = []  # (what, address, rest)
        for way, pdu in wire.pdus():
            name = type(pdu).__name__
            if way == "in" and isinstance(pdu, (P.SubmitSm, P.DataSm)):
                allowed = "destination_addr"  # the alert's recipient
            elif way == "out" and isinstance(pdu, (P.DeliverSm, P.DataSm)):
                allowed = "source_addr"  # the reply's sender
            else:
                allowed = ""
            addressed.append((f"{way} {name}", *_fields(pdu, allowed)))
        kinds = {what for what, _, _ in addressed}
        assert {"in SubmitSm", "out DeliverSm"} <= kinds, kinds
        assert len(addressed) > 3 * expected

        everyone = [*numbers, stranger]
        for name, data in stored.items():
            for pan in pans:
                for form in (pan.encode(), pan.encode("utf-16-be")):
                    assert form not in data, f"a full PAN is in {name}"
            for number in everyone:
                for form in _forms(number):
                    assert form not in data, f"a phone number is in clear in {name}"
        for what, address, rest in addressed:
            for pan in pans:
                assert pan.encode() not in address + rest, f"a full PAN is in {what}"
            for number in everyone:
                for form in _forms(number):
                    assert form not in rest, (
                        f"a phone number is in {what} outside its address"
                    )
        # ... while the numbers did travel where they must.
        sent_to = {"+" + r.destination_addr for r in sim.factory.received}
        assert {enrolled, merchant_a, merchant_b, numbers[1]} <= sent_to
        assert numbers[0] not in sent_to  # its alert went to the enrolled number
        first = [
            r for r in sim.factory.received if "+" + r.destination_addr == enrolled
        ]
        assert pans[0][-4:].encode() in first[0].short_message
    finally:
        if gw.proc is not None and gw.proc.poll() is None:
            yield gw.kill(signal.SIGTERM)
        yield sim.stopService()
        yield site.stopListening()
