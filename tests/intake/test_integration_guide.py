"""docs/terminal-integration.md: its worked example is what the gateway sends
and answers, byte for byte."""

from __future__ import annotations

import re
from pathlib import Path

from twisted.internet import defer
from twisted.internet.task import Clock

from smsgw.intake.decide import AcceptResult, Intake
from smsgw.intake.envelope import TerminalKey, request_frame
from smsgw.intake.terminals import Terminal
from tests.intake.test_envelope import BODY, KEY
from tests.intake.test_protocol import Hasher

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "terminal-integration.md"


def _block(name: str) -> bytes:
    text = GUIDE.read_text(encoding="utf-8")
    found = re.search(rf"<!-- {name} -->\n```json\n(.+?)\n```", text, re.S)
    assert found is not None, name
    return found.group(1).encode("utf-8")


class Acceptor:
    def accept(self, terminal: object, txn: object) -> defer.Deferred[AcceptResult]:
        return defer.succeed(AcceptResult("accepted", "19acf7c0d88e216fa639153", 1))


def test_the_worked_example_is_byte_exact() -> None:
    """The guide's request frame is the signed spec vector; the answer is what
    Intake answers for that commit; the stated lengths match."""
    frame = request_frame("T1001", BODY, TerminalKey(KEY))
    assert frame == bytes.fromhex("0000018e") + _block("request")
    assert len(frame) == 402
    clock = Clock()
    clock.advance(1764417605)
    terminal = Terminal("T1001", (TerminalKey(KEY),), True, True, None, None)
    intake = Intake({"T1001": terminal}, Acceptor(), Hasher(), clock)
    answers: list[bytes] = []
    result = intake.handle(frame[4:])
    assert isinstance(result, defer.Deferred)
    result.addCallback(answers.append)
    assert answers == [bytes.fromhex("000000c5") + _block("answer")]
    assert len(answers[0]) == 201
