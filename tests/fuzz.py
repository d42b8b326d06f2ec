"""A mutation fuzzer over every place outside bytes come in.

    .venv/bin/python -m tests.fuzz --inputs 1000000 [--seed N]

Targets (each with its contract: what it may return or raise, nothing else):

- ``intake``: IntakeProtocol on a StringTransport fed the bytes in random
  chunks: never raises; every answer is a well-formed framed envelope whose
  body is an ack, a pong or an error with one of the spec's codes; a frame of
  length 0 or over max_frame closes the connection after its answer.
- ``envelope``: parse_envelope -> Envelope, or IntakeError "malformed".
- ``smpp_framer``: FrameSplitter.feed -> frames, never raises (bad lengths
  set ``error``); split_frames -> frames or FrameError.
- ``pdu``: codec decode -> a PDU, or DecodeError; a decoded PDU encodes again.
- ``receipt``: parse_receipt on any deliver_sm -> Receipt or None, never raises.
- ``mo``: mo_part -> MoPart or MoError; assemble and decode_text never raise.

Inputs are seeds (valid frames, PDUs, receipts, replies) mutated at random
(bit flips, byte sets, inserts, deletes, duplicated spans, truncation,
splices, boundary lengths), deterministic for a seed. An input that runs
longer than HANG_SECONDS is a hang. Exit status 0 when every input kept its
contract; the first failures are printed with the input's hex.
"""

from __future__ import annotations

import argparse
import random
import signal
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from smsgw.codec import pdu as P
from smsgw.codec.framing import FrameError, FrameSplitter, split_frames
from smsgw.codec.receipt import parse_receipt
from smsgw.codec.text import decode_text
from smsgw.feedback.mo import MoError, assemble, mo_part
from smsgw.intake.decide import Intake
from smsgw.intake.envelope import (
    IntakeError,
    TerminalKey,
    parse_envelope,
    request_frame,
)
from smsgw.intake.protocol import IntakeFactory
from smsgw.intake.terminals import Terminal

__all__ = ["TARGETS", "run"]

HANG_SECONDS = 2.0
KEY = bytes(range(32))
NOW = 1764417605
CODES = {
    "malformed", "too_large", "unknown_terminal", "bad_mac", "stale", "invalid",
    "conflict", "rate_limited", "unavailable",
}  # fmt: skip


class Broken(Exception):
    """An input broke its target's contract."""


# -- seeds -------------------------------------------------------------------


def _txn(i: int) -> dict[str, Any]:
    return {
        "type": "txn", "txn_id": f"f{i}", "ts": NOW, "kind": "purchase",
        "amount": "128.50", "currency": "CNY", "pan": "6222021234567894",
        "merchant_id": "M001", "merchant_name": "星巴克(南京西路店)",
        "time": "2026-11-29T20:00:05+08:00", "msisdn": "+8613800138000",
    }  # fmt: skip


def _intake_seeds() -> list[bytes]:
    key = TerminalKey(KEY)
    ping = {"type": "ping", "ts": NOW, "nonce": "n1"}
    return [
        request_frame("T1", _txn(1), key),
        request_frame("T1", ping, key),
        request_frame("T9", _txn(2), key),
        request_frame("T1", _txn(3) | {"kind": "refund", "orig_txn_id": "f1"}, key),
        request_frame("T1", _txn(4), key) + request_frame("T1", ping, key),
    ]


def _pdus() -> list[P.Pdu]:
    receipt_text = (
        b"id:1A2B sub:001 dlvrd:001 submit date:2611292000 done date:2611292001 "
        b"stat:DELIVRD err:000 text:hello"
    )
    return [
        P.SubmitSm(source_addr="95588", destination_addr="8613800138000",
                   short_message="不是我".encode("utf-16-be"), data_coding=8),
        P.SubmitSmResp(message_id="1A2B"),
        P.DeliverSm(source_addr="8613800138000", destination_addr="95588",
                    esm_class=4, short_message=receipt_text,
                    tlvs=((0x001E, b"1A2B\x00"), (0x0427, b"\x02"))),
        P.DeliverSm(source_addr="8613800138000", destination_addr="95588",
                    esm_class=0x40, data_coding=8,
                    short_message=b"\x05\x00\x03\x07\x02\x01"
                    + "不是".encode("utf-16-be")),
        P.DeliverSm(source_addr="8613800138000", destination_addr="95588",
                    short_message=b"STOP",
                    tlvs=((0x020C, b"\x00\x07"), (0x020E, b"\x02"), (0x020F, b"\x01"))),
        P.DataSm(source_addr="8613800138000", destination_addr="95588",
                 tlvs=((0x0424, "帮助".encode("utf-16-be")),), data_coding=8),
        P.EnquireLink(),
        P.BindTransceiver(system_id="smsgw", password="secret"),
        P.GenericNack(command_status=3),
    ]  # fmt: skip


# -- mutations -------------------------------------------------------------------


_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 2**63, 1.5, "", " ", "0", "-0.01", "1e3", "128.5",
    "999999999999.999", "CNY", "XXX", "JPY", "6222021234567894", "4111111111111112",
    "+8613800138000", "8613800138000", "2026-11-29T20:00:05+08:00",
    "2026-02-30T25:00:00Z",
    "\x00", "星巴克" * 40, "A" * 200, [], {}, ["a"], {"k": 1},
)  # fmt: skip
_FIELDS = (
    "type", "txn_id", "ts", "kind", "amount", "currency", "pan", "card_token",
    "merchant_id", "merchant_name", "location", "time", "msisdn", "balance", "lang",
    "result", "rrn", "stan", "auth_code", "orig_txn_id", "issuer", "nonce", "extra",
)  # fmt: skip


def signed_body(rng: random.Random, n: int) -> bytes:
    """A validly signed request whose body fields are changed at random: the
    checks behind the MAC (rate, ts, every field, the store) see it."""
    body: dict[str, Any] = (
        _txn(n) if rng.random() < 0.85 else {"type": "ping", "ts": NOW, "nonce": "x"}
    )
    for _ in range(rng.randint(1, 3)):
        field = rng.choice(_FIELDS)
        if rng.random() < 0.2:
            body.pop(field, None)
        else:
            body[field] = rng.choice(_VALUES)
    return request_frame("T1", body, TerminalKey(KEY))


def framed(rng: random.Random, data: bytes, seeds: Sequence[bytes], pdu: bool) -> bytes:
    """A mutation that mostly keeps the length field right, so the parsers
    behind the framers see the damage (a wrong length is fuzzed too)."""
    if rng.random() < 0.25:
        return mutate(rng, data, seeds)
    body = mutate(rng, data[4:], [s[4:] for s in seeds])
    length = len(body) + 4 if pdu else len(body)
    return struct.pack(">I", length) + body


def mutate(rng: random.Random, data: bytes, seeds: Sequence[bytes]) -> bytes:
    """One to four random mutations of ``data``."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        n = len(buf)
        if op == 0 and n:
            i = rng.randrange(n)
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            buf[rng.randrange(n)] = rng.choice(
                (0, 0x7F, 0x80, 0xFF, rng.randrange(256))
            )
        elif op == 2:
            at = rng.randint(0, n)
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 3 and n:
            at = rng.randrange(n)
            del buf[at : at + rng.randint(1, 16)]
        elif op == 4 and n:
            at = rng.randrange(n)
            span = buf[at : at + rng.randint(1, 32)]
            buf[at:at] = span
        elif op == 5:
            del buf[rng.randint(0, n) :]
        elif op == 6:
            other = rng.choice(seeds)
            cut = rng.randint(0, len(other))
            buf = buf[: rng.randint(0, n)] + bytearray(other[cut:])
        elif op == 7 and n >= 4:
            at = rng.randrange(0, n - 3)
            value = rng.choice((0, 1, 15, 16, 17, 0x7FFFFFFF, 0xFFFFFFFF, n, n + 1))
            buf[at : at + 4] = struct.pack(">I", value)
        elif op == 8:
            buf += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    return bytes(buf)


# -- targets --------------------------------------------------------------------


def _intake_target() -> Callable[[bytes, random.Random], None]:
    clock = Clock()
    clock.advance(NOW)
    terminal = Terminal("T1", (TerminalKey(KEY),), True, True, None, None)

    class Acceptor:
        def accept(self, terminal: Any, txn: Any) -> Any:
            from twisted.internet import defer

            from smsgw.intake.decide import AcceptResult

            return defer.succeed(AcceptResult("accepted", "R1", 1))

    class Hasher:
        rotating = False

        def card_hash(self, pan: str) -> str:
            return "k1:" + str(len(pan))

        def digest(self, data: bytes) -> bytes:
            return data[:32]

    intake = Intake({"T1": terminal}, Acceptor(), Hasher(), clock, max_skew=300)
    factory = IntakeFactory(intake, clock, max_frame=4096, idle_timeout=300.0)

    def run_one(data: bytes, rng: random.Random) -> str:
        proto = factory.buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        pos = 0
        while pos < len(data):
            step = rng.randint(1, max(1, len(data)))
            proto.dataReceived(data[pos : pos + step])
            pos += step
        out = transport.value()
        outcomes: list[str] = []
        while out:
            if len(out) < 4:
                raise Broken("a partial answer frame")
            (n,) = struct.unpack(">I", out[:4])
            envelope = orjson.loads(out[4 : 4 + n])
            out = out[4 + n :]
            body = orjson.loads(envelope["body"])
            kind = body.get("type")
            if kind == "error":
                if body.get("code") not in CODES:
                    raise Broken(f"unknown error code {body.get('code')!r}")
                outcomes.append(body["code"])
            elif kind in ("ack", "pong"):
                outcomes.append(kind)
            else:
                raise Broken(f"an answer of type {kind!r}")
        proto.connectionLost(None)  # type: ignore[arg-type]
        for call in clock.getDelayedCalls():
            call.cancel()
        return outcomes[0] if outcomes else "no answer (incomplete frame)"

    return run_one


def _envelope(data: bytes, rng: random.Random) -> str:
    try:
        parse_envelope(data[4:])
    except IntakeError as e:
        if e.code != "malformed":
            raise Broken(f"parse_envelope raised {e.code}") from None
        return "malformed"
    return "envelope"


def _smpp_framer(data: bytes, rng: random.Random) -> str:
    splitter = FrameSplitter(max_length=4096)
    pos = 0
    while pos < len(data):
        step = rng.randint(1, max(1, len(data)))
        splitter.feed(data[pos : pos + step])
        pos += step
    try:
        frames, _ = split_frames(data, 4096)
    except FrameError:
        return "bad length"
    return f"{len(frames)} frames" if len(frames) < 2 else "frames"


def _pdu(data: bytes, rng: random.Random) -> str:
    try:
        pdu = P.decode(data)
    except P.DecodeError:
        return "DecodeError"
    try:
        P.encode(pdu)
    except P.EncodeError:
        return "decoded, not re-encodable"  # lenient decoding, strict encoding
    return type(pdu).__name__


def _receipt(data: bytes, rng: random.Random) -> str:
    try:
        pdu = P.decode(data)
    except P.DecodeError:
        return "DecodeError"
    if not isinstance(pdu, P.DeliverSm | P.DataSm):
        return "not a delivery"
    receipt = parse_receipt(pdu)
    try:
        part = mo_part(pdu)
    except MoError:
        return "MoError"
    assemble([part])
    decode_text(part.data, pdu.data_coding)
    return "receipt" if receipt is not None else f"mo {part.method}"


TARGETS: dict[str, tuple[Callable[[], Callable[[bytes, random.Random], str]], str]] = {
    "intake": (_intake_target, "intake"),
    "envelope": (lambda: _envelope, "intake"),
    "smpp_framer": (lambda: _smpp_framer, "pdu"),
    "pdu": (lambda: _pdu, "pdu"),
    "receipt_and_mo": (lambda: _receipt, "pdu"),
}


class _Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise _Hang


def run(
    inputs: int, seed: int = 1, out: Any = sys.stdout
) -> tuple[Counter[str], dict[str, Counter[str]]]:
    """Fuzz every target with ``inputs`` inputs in all; returns counts of
    inputs, crashes and hangs per target, and each target's outcomes."""
    rng = random.Random(seed)
    seeds = {"intake": _intake_seeds(), "pdu": [P.encode(p, 1) for p in _pdus()]}
    counts: Counter[str] = Counter()
    seen: dict[str, Counter[str]] = {name: Counter() for name in TARGETS}
    per_target = max(1, inputs // len(TARGETS))
    signal.signal(signal.SIGALRM, _alarm)
    shown = 0
    for name, (make, kind) in TARGETS.items():
        target = make()
        corpus = seeds[kind]
        for i in range(per_target):
            if i < len(corpus):
                data = corpus[i % len(corpus)]
            elif name == "intake" and rng.random() < 0.5:
                data = signed_body(rng, i)
            else:
                data = framed(rng, rng.choice(corpus), corpus, kind == "pdu")
            counts[name] += 1
            signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
            try:
                seen[name][target(data, rng)] += 1
            except _Hang:
                counts[f"{name} hangs"] += 1
                problem = "hang"
            except Exception as e:  # anything else is a contract break
                counts[f"{name} crashes"] += 1
                problem = f"{type(e).__name__}: {e}"
            else:
                problem = None
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            if problem is not None and shown < 10:
                shown += 1
                out.write(f"{name}: {problem}\n  input {data.hex()}\n")
    return counts, seen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    ns = parser.parse_args(argv)
    started = time.monotonic()
    counts, seen = run(ns.inputs, ns.seed)
    elapsed = time.monotonic() - started
    total = sum(counts[name] for name in TARGETS)
    bad = sum(v for k, v in counts.items() if k.endswith(("crashes", "hangs")))
    for name in TARGETS:
        print(
            f"{name:15s} {counts[name]:>9,} inputs  {counts[name + ' crashes']} crashes"
            f"  {counts[name + ' hangs']} hangs"
        )
        common = ", ".join(f"{k} {v:,}" for k, v in seen[name].most_common(6))
        print(f"    outcomes: {common}")
    print(f"total {total:,} inputs in {elapsed:.0f} s: {bad} contract breaks")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
