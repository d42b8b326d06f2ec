"""Replies end to end: a real gateway process, the SMSC simulator's MO
injection and an issuer's fraud endpoint, all on 127.0.0.1.

An alert goes out; the cardholder answers 不是我 in UCS-2; the gateway
disputes the transaction, acknowledges by SMS and posts a signed webhook.
Then STOP: confirmed once, and the next transaction to that number sends
nothing. A reply in three parts arriving out of order is one message.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_twisted
from twisted.internet import reactor, utils
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web.client import Agent, readBody
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from smsgw.codec.text import decode_text
from smsgw.feedback.webhook import verify
from smsgw.smsc.core import build_mo_pdus
from tests.gateway_harness import body, connect, msisdn, start
from tests.test_loopback import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.loopback]

SECRET = "fraud-endpoint-secret-0123456789"
NUMBER = msisdn(0, 1)
PAN = "6222021234567894"

FEEDBACK = """\
issuers:
  - name: default
    signature: {{zh: 示例银行, en: Demo Bank}}
    source_addr: "95588"
    fraud_webhook: {{url: "http://127.0.0.1:{port}/fraud", secret: "{secret}"}}
feedback: {{reassembly_timeout: 2}}
"""


class Fraud(Resource):
    """The issuer's fraud endpoint: records each POST, answers 204."""

    isLeaf = True  # noqa: N815 (twisted.web's name)

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[tuple[str, bytes]] = []

    def render_POST(self, request: Request) -> bytes:
        assert request.content is not None
        header = request.getHeader(b"x-smsgw-signature") or b""
        self.posts.append((header.decode(), request.content.read()))
        request.setResponseCode(204)
        return b""


def _texts_to(sim: Any, number: str) -> list[str]:
    return [
        decode_text(r.short_message, r.data_coding)
        for r in sim.factory.received
        if "+" + r.destination_addr == number
    ]


def _rows(folder: Path, sql: str) -> list[Any]:
    db = folder / "data" / "smsgw.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql).fetchall()


# twisted.web's readBody warns about the client transport it is handed; the
# body is read whole all the same.
@pytest.mark.filterwarnings("ignore:Using readBody with a transport:DeprecationWarning")
@pytest_twisted.inlineCallbacks
def test_not_me_stop_and_a_long_reply_through_the_binds(
    tmp_path: Path,
) -> Generator[Any, Any, None]:
    """Dispute with acknowledgement and a signed webhook, STOP honoured by the
    next transaction, and a three-part reply reassembled out of order."""
    fraud = Fraud()
    site = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        Site(fraud)
    )
    extra = FEEDBACK.format(port=site.getHost().port, secret=SECRET)
    sim, gw = yield start(tmp_path, extra=extra)
    try:
        accepted: set[str] = set()
        [client] = yield connect(gw, accepted, 1)
        now = int(reactor.seconds())
        client.send(body(0, 1, now, pan=PAN))
        yield wait_until(lambda: len(_texts_to(sim, NUMBER)) == 1, timeout=30)
        [alert] = _texts_to(sim, NUMBER)
        assert "*7894" in alert

        # 不是我 ("not me") in UCS-2: disputed, acknowledged, posted.
        sim.factory.inject_mo(NUMBER, "95588", "不是我", encoding="ucs2")
        yield wait_until(lambda: len(fraud.posts) == 1, timeout=30)
        header, payload = fraud.posts[0]
        assert verify(SECRET.encode(), header, payload, int(time.time()))
        event = orjson.loads(payload)
        assert (event["event"], event["masked_pan"], event["last4"]) == (
            "not_me",
            "622202******7894",
            "7894",
        )
        assert event["reply"]["from"] == NUMBER
        assert event["reply"]["text"] == "不是我"
        assert PAN not in payload.decode()
        yield wait_until(lambda: len(_texts_to(sim, NUMBER)) == 2, timeout=30)
        ack = _texts_to(sim, NUMBER)[1]
        assert "was not you" in ack
        assert "*7894" in ack
        [txn] = _rows(tmp_path, "SELECT * FROM transactions")
        assert txn["feedback"] == "not_me"
        assert txn["disputed_at"] is not None
        [mo] = _rows(tmp_path, "SELECT * FROM mo_messages")
        assert (mo["classification"], mo["matched_by"], mo["action"]) == (
            "not_me",
            "single",
            "disputed",
        )
        yield wait_until(
            lambda: (
                _rows(tmp_path, "SELECT status FROM webhooks")[0]["status"]
                == "delivered"
            ),
            timeout=10,
        )
        [attempt] = _rows(tmp_path, "SELECT * FROM webhook_attempts")
        assert (attempt["attempt"], attempt["status_code"], attempt["outcome"]) == (
            1,
            204,
            "delivered",
        )

        # STOP: one confirmation; the next transaction to that number: no alert.
        sim.factory.inject_mo(NUMBER, "95588", "STOP")
        yield wait_until(lambda: len(_texts_to(sim, NUMBER)) == 3, timeout=30)
        assert "no longer" in _texts_to(sim, NUMBER)[2]
        client.send(body(0, 1, now, pan=PAN) | {"txn_id": "c0-after-stop"})
        yield wait_until(lambda: "c0-after-stop" in accepted, timeout=30)
        [later] = _rows(
            tmp_path, "SELECT alerts FROM transactions WHERE txn_id = 'c0-after-stop'"
        )
        assert later["alerts"] == 0

        # A three-part reply, its parts delivered last first.
        long_text = "这笔交易我不认识\uff0c" * 20
        pdus = build_mo_pdus(NUMBER, "95588", long_text, encoding="ucs2", ref=77)
        assert len(pdus) >= 3
        for pdu in reversed(pdus):
            sim.factory.inject_raw(pdu)
        yield wait_until(
            lambda: len(_rows(tmp_path, "SELECT id FROM mo_messages")) == 3, timeout=30
        )
        last = _rows(tmp_path, "SELECT * FROM mo_messages ORDER BY id DESC LIMIT 1")[0]
        assert (last["text"], last["parts"], last["complete"]) == (
            long_text,
            len(pdus),
            1,
        )
        assert _rows(tmp_path, "SELECT COUNT(*) AS n FROM mo_parts")[0]["n"] == 0

        # The admin API (its own loopback port) shows the transaction's feedback.
        log = gw.log_path.read_text(errors="replace")
        port = int(re.findall(r"admin API listening on 127\.0\.0\.1:(\d+)", log)[-1])
        ref = txn["ref"]
        response = yield Agent(reactor).request(
            b"GET", f"http://127.0.0.1:{port}/api/v1/transactions/{ref}".encode()
        )
        shown = orjson.loads((yield readBody(response)))
        assert response.code == 200
        assert (shown["feedback"], shown["replies"][0]["classification"]) == (
            "not_me",
            "not_me",
        )
        assert shown["webhooks"][0]["status"] == "delivered"
        base = f"http://127.0.0.1:{port}"
        response = yield Agent(reactor).request(b"GET", f"{base}/healthz".encode())
        health = orjson.loads((yield readBody(response)))
        assert (response.code, health["binds_up"], health["store"]) == (200, 1, "ok")
        response = yield Agent(reactor).request(b"GET", f"{base}/metrics".encode())
        metrics = (yield readBody(response)).decode()
        assert 'smsgw_carrier_mo_total{carrier="sim"}' in metrics
        assert 'smsgw_intake_requests_total{result="accepted"} 2.0' in metrics
        assert 'smsgw_feedback_total{class="not_me"} 1.0' in metrics
        assert "# TYPE smsgw_alerts_by_status gauge" in metrics
        assert 'smsgw_feedback_total{class="stop"} 1.0' in metrics
        assert 'smsgw_receipts_by_state_total{carrier="sim",state="DELIVRD"}' in metrics
        assert 'smsgw_submit_resp_seconds_bucket{carrier="sim",le="+Inf"}' in metrics

        # The store process sealed every batch: the audit chain verifies.
        out, _, code = yield utils.getProcessOutputAndValue(
            sys.executable,
            ["-m", "smsgw.cli", "audit", "verify", "--config", "smsgw.yaml"],
            path=str(tmp_path),
            env=dict(os.environ),
        )
        assert code == 0, out
        assert b"audit chain intact" in out
    finally:
        client.transport.loseConnection()
        yield gw.kill(15)
        yield sim.stopService()
        yield site.stopListening()
