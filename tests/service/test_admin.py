"""The admin API's read endpoints over a real store (SQLite and PostgreSQL):
transaction with alerts, parts and feedback; the feedback report; replies for
review; bearer tokens; JSON errors."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine
from twisted.internet import defer
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from smsgw._validate import Secret
from smsgw.feedback.mo import MoPart
from smsgw.service.admin import AdminApi
from smsgw.service.config import AdminConfig
from smsgw.service.config_alerts import IssuerConfig
from smsgw.store.delivery import sent_op
from smsgw.store.replies import MoItem
from smsgw.store.rows import Sent, SentPart
from tests.service.test_feedback_cli import ACCEPT, MO
from tests.store.conftest import db_url, engine, pg_url  # noqa: F401
from tests.store.helpers import NOW, hasher, item, run, txn

ISSUERS = [IssuerConfig(timezone="Asia/Shanghai")]


def api(engine: Engine, **admin: Any) -> AdminApi:  # noqa: F811
    def read(query: Callable[[Connection], Any]) -> defer.Deferred[Any]:
        with engine.connect() as conn:
            return defer.succeed(query(conn))

    return AdminApi(AdminConfig(**admin), read, ISSUERS, lambda: NOW + 3600)


def get(
    resource: AdminApi,
    path: str,
    *,
    token: str | None = None,
    method: bytes = b"GET",
    body: bytes = b"",
) -> tuple[int, Any]:
    """Render ``path`` (with its query string); (status, parsed JSON body)."""
    raw, _, query = path.partition("?")
    request = DummyRequest([])
    request.method = method
    request.content = io.BytesIO(body)  # type: ignore[attr-defined]
    request.path = raw.encode()  # type: ignore[attr-defined]
    for pair in filter(None, query.split("&")):
        key, _, value = pair.partition("=")
        request.addArg(key.encode(), value.encode())
    if token is not None:
        request.requestHeaders.addRawHeader(
            b"authorization", f"Bearer {token}".encode()
        )
    result = resource.render(request)
    if result is not NOT_DONE_YET:
        request.write(result)
        request.finish()
    assert request.finished
    return request.responseCode or 200, json.loads(b"".join(request.written))


@pytest.fixture
def ref(engine: Engine, tmp_path: Path) -> str:  # noqa: F811
    """A transaction sent and reported not-me, and a reply nobody can match."""
    t = txn(hasher(tmp_path), txn_id="t1", msisdn="+8613800000001")
    [out] = run(engine, ACCEPT, [item(t, now=NOW)])
    [alert] = out.queued
    run(engine, sent_op, [Sent(alert.id, "sim", (SentPart(1, "m-1"),), 1, NOW + 1)])
    for number, body in (("8613800000001", "N"), ("8613900000009", "hi")):
        part = MoPart(number, "95588", 0, None, 1, 1, body.encode(), "single")
        run(engine, MO, [MoItem("sim", part, NOW + 60)])
    return str(out.result.ref)


def test_a_transaction_with_its_alerts_parts_and_feedback(
    engine: Engine,  # noqa: F811
    ref: str,
) -> None:
    """GET /api/v1/transactions/{ref}: card masked, the alert with its part and
    SMSC message id, the reply, the dispute; numbers masked; 404 otherwise."""
    code, body = get(api(engine), f"/api/v1/transactions/{ref}")
    assert code == 200
    assert (body["masked_pan"], body["feedback"]) == ("622202******7894", "not_me")
    assert body["disputed_at"] == NOW + 60
    cardholder = body["alerts"][0]
    assert (cardholder["status"], cardholder["destination"]) == (
        "submitted",
        "+86138****0001",
    )
    assert cardholder["parts"] == [
        {
            "part_no": 1,
            "carrier": "sim",
            "message_id": "m-1",
            "status": "submitted",
            "error": None,
            "submitted_at": NOW + 1,
            "done_at": None,
        }
    ]
    assert [r["action"] for r in body["replies"]] == ["disputed"]
    assert "6222021234567894" not in json.dumps(body)
    assert get(api(engine), "/api/v1/transactions/nope") == (
        404,
        {"error": "no transaction nope"},
    )


def test_the_feedback_report_and_replies_for_review(
    engine: Engine,  # noqa: F811
    ref: str,
) -> None:
    """Per merchant and day in the issuer's time zone; unmatched replies; bad
    parameters are 400 with the reason."""
    code, body = get(
        api(engine), "/api/v1/feedback/report?from=2025-11-29&to=2025-11-30"
    )
    assert code == 200
    assert body["timezone"] == "Asia/Shanghai"
    [day] = body["days"]
    assert (day["merchant_id"], day["day"], day["alerted"], day["not_me"]) == (
        "M001",
        "2025-11-29",
        1,
        1,
    )
    code, body = get(api(engine), "/api/v1/feedback/unmatched?days=2")
    assert code == 200
    assert [(r["from"], r["text"]) for r in body["replies"]] == [
        ("+86139****0009", "hi")
    ]
    assert get(api(engine), "/api/v1/feedback/report?from=29.11.2025")[0] == 400
    assert get(api(engine), "/api/v1/feedback/report?issuer=nope") == (
        400,
        {"error": "issuer: no issuer profile 'nope'"},
    )
    assert get(api(engine), "/api/v1/feedback/unmatched?limit=0")[0] == 400


def test_tokens_methods_paths_and_store_failures(
    engine: Engine,  # noqa: F811
    ref: str,
    observe_errors: list[Any],
) -> None:
    """With tokens set, either one reads and nothing else does; only GET; unknown
    paths 404; a store that fails answers 503 without details."""
    secured = api(engine, token=Secret("a" * 32), read_token=Secret("r" * 32))
    path = f"/api/v1/transactions/{ref}"
    assert get(secured, path) == (401, {"error": "a valid bearer token is required"})
    assert get(secured, path, token="x" * 32)[0] == 401
    assert get(secured, path, token="r" * 32)[0] == 200
    assert get(secured, path, token="a" * 32)[0] == 200
    assert get(api(engine), path, method=b"PUT")[0] == 405
    assert get(api(engine), path, method=b"POST") == (
        403,
        {"error": "actions are disabled: set admin.token"},
    )
    assert get(api(engine), "/metrics/x")[0] == 404
    assert get(api(engine), "/api/v1/nothing")[0] == 404

    def broken(query: Callable[[Connection], Any]) -> defer.Deferred[Any]:
        return defer.fail(RuntimeError("database is locked"))

    failing = AdminApi(AdminConfig(), broken, ISSUERS, lambda: NOW)
    assert get(failing, path) == (503, {"error": "the store could not answer"})
    [logged] = observe_errors  # the cause is logged for the operator
    assert logged["log_failure"].getErrorMessage() == "database is locked"
    observe_errors.clear()


class FakeActions:
    def __init__(self) -> None:
        self.done: list[tuple[Any, ...]] = []

    def binds(self) -> tuple[int, int]:
        return (1, 1)

    def metrics(self) -> bytes:
        return b""

    def carriers(self) -> list[dict[str, Any]]:
        return [{"name": "sim", "bound": 1, "paused": False}]

    def has_carrier(self, name: str) -> bool:
        return name == "sim"

    def pause(self, name: str, paused: bool, actor: str) -> defer.Deferred[bool]:
        self.done.append(("pause", name, paused, actor))
        return defer.succeed(True)

    def requeue(self, ids: tuple[str, ...], actor: str) -> defer.Deferred[int]:
        self.done.append(("requeue", ids, actor))
        return defer.succeed(len(ids) - 1)

    def test_alert(self, to: str, text: str, actor: str) -> defer.Deferred[str]:
        self.done.append(("test", to, text, actor))
        return defer.succeed("X.t")


def test_actions_need_the_admin_scope_and_say_who_did_them(
    engine: Engine,  # noqa: F811
) -> None:
    """The read token reads carriers but may not act (403); the admin token pauses,
    resumes and requeues, named as the actor; bad requests are 400 / 404."""
    actions = FakeActions()
    secured = AdminApi(
        AdminConfig(token=Secret("a" * 32), read_token=Secret("r" * 32)),
        lambda q: defer.succeed(None),
        ISSUERS,
        lambda: NOW,
        actions,
    )
    read, admin = "r" * 32, "a" * 32
    assert get(secured, "/api/v1/carriers", token=read) == (
        200,
        {"carriers": [{"name": "sim", "bound": 1, "paused": False}]},
    )
    pause = "/api/v1/carriers/sim/pause"
    assert get(secured, pause, token=read, method=b"POST") == (
        403,
        {"error": "actions need the admin token (admin.token)"},
    )
    assert get(secured, pause, method=b"POST")[0] == 401
    assert get(secured, pause, token=admin, method=b"POST") == (
        200,
        {"carrier": "sim", "paused": True, "changed": True},
    )
    assert (
        get(secured, "/api/v1/carriers/sim/resume", token=admin, method=b"POST")[0]
        == 200
    )
    assert (
        get(secured, "/api/v1/carriers/nope/pause", token=admin, method=b"POST")[0]
        == 404
    )
    requeue = "/api/v1/alerts/requeue"
    body = json.dumps({"ids": ["A.1", "A.2"]}).encode()
    assert get(secured, requeue, token=admin, method=b"POST", body=body) == (
        200,
        {"requeued": 1},
    )
    for bad in (b"nope", b"{}", b'{"ids": []}', b'{"ids": [1]}'):
        assert get(secured, requeue, token=admin, method=b"POST", body=bad)[0] == 400
    test = "/api/v1/test-alert"
    hello = json.dumps({"to": "+86 138 0013 8000", "text": "hello"}).encode()
    assert get(secured, test, token=admin, method=b"POST", body=hello) == (
        200,
        {"queued": "X.t"},
    )
    for bad in (b'{"to": "12"}', b'{"to": "+8613800138000", "text": ""}', b"[]"):
        assert get(secured, test, token=admin, method=b"POST", body=bad)[0] == 400
    assert actions.done.pop() == ("test", "+8613800138000", "hello", "admin-api:admin")
    assert actions.done == [
        ("pause", "sim", True, "admin-api:admin"),
        ("pause", "sim", False, "admin-api:admin"),
        ("requeue", ("A.1", "A.2"), "admin-api:admin"),
    ]


def test_healthz_and_metrics(engine: Engine, observe_errors: list[Any]) -> None:  # noqa: F811
    """/healthz answers 200 with the binds while the store answers, 503 when it
    does not, with no token; /metrics is public unless admin.metrics_public is
    false."""
    actions = FakeActions()
    actions.binds = lambda: (1, 2)  # type: ignore[method-assign]
    actions.metrics = lambda: b"smsgw_up 1\n"  # type: ignore[method-assign]

    def read(query: Callable[[Connection], Any]) -> defer.Deferred[Any]:
        with engine.connect() as conn:
            return defer.succeed(query(conn))

    secured = AdminApi(
        AdminConfig(token=Secret("a" * 32), metrics_public=False),
        read,
        ISSUERS,
        lambda: NOW,
        actions,
    )
    assert get(secured, "/healthz") == (
        200,
        {"status": "ok", "store": "ok", "binds_up": 1, "binds": 2},
    )
    assert get(secured, "/metrics")[0] == 401
    public = AdminApi(AdminConfig(), read, ISSUERS, lambda: NOW, actions)
    request = DummyRequest([])
    request.path = b"/metrics"  # type: ignore[attr-defined]
    assert public.render(request) == b"smsgw_up 1\n"

    def broken(query: Callable[[Connection], Any]) -> defer.Deferred[Any]:
        return defer.fail(RuntimeError("unable to open database file"))

    down = AdminApi(AdminConfig(), broken, ISSUERS, lambda: NOW, actions)
    assert get(down, "/healthz") == (503, {"error": "the store does not answer"})


def test_alerts_to_a_number_and_access_logs_without_query_strings(
    engine: Engine,  # noqa: F811
    ref: str,
) -> None:
    """The alerts sent to a number, newest first, masked; a bad number is 400;
    the access log line leaves the query string (the number) out."""
    from twisted.internet.address import IPv4Address

    from smsgw.service.admin import access_log

    code, body = get(api(engine), "/api/v1/alerts?msisdn=+8613800000001")
    assert code == 200
    assert body["msisdn"] == "+86138****0001"
    reply, alert = body["alerts"]  # newest first: the acknowledgement, the alert
    assert (reply["audience"], reply["ref"]) == ("reply", ref)
    assert (alert["ref"], alert["feedback"], alert["masked_pan"]) == (
        ref,
        "not_me",
        "622202******7894",
    )
    assert get(api(engine), "/api/v1/alerts?msisdn=12")[0] == 400
    request = DummyRequest([])
    request.uri = b"/api/v1/alerts?msisdn=%2B8613800000001"
    request.method = b"GET"
    request.clientproto = b"HTTP/1.1"
    request.code = 200  # type: ignore[attr-defined]
    request.sentLength = 10  # type: ignore[attr-defined]
    request.client = IPv4Address("TCP", "127.0.0.1", 5)
    line = access_log("[29/Nov/2026:12:00:00 +0000]", request)
    assert '"GET /api/v1/alerts HTTP/1.1" 200' in line
    assert "8613800000001" not in line
