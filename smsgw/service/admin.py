"""The admin HTTP API (twisted.web): read endpoints over the store.

    GET /api/v1/transactions/{ref}      the transaction (card masked), its alerts
                                        with parts, SMSC message ids and statuses,
                                        the replies matched to it, its dispute and
                                        fraud webhooks with every attempt
    GET /api/v1/feedback/report         per merchant and day: alerted, confirm,
        ?issuer=&from=&to=&merchant=    not_me, stop, no_reply and their rates
    GET /api/v1/feedback/unmatched      replies kept for review
        ?days=&limit=&issuer=
    GET /api/v1/alerts?msisdn=N         the latest alerts to a number (shown
        [&limit=50]                     masked; access log lines never carry a
                                        query string, see `access_log`)
    GET /api/v1/carriers                each carrier: binds up, paused, tps,
                                        window, counters
    POST /api/v1/carriers/{name}/pause  stop sending over it (alerts wait or
    POST /api/v1/carriers/{name}/resume fail over), and start again
    POST /api/v1/test-alert             a test SMS through the normal queue:
        {"to": "+86...", "text": "..."}
    POST /api/v1/alerts/requeue         send failed / expired alerts again:
        {"ids": ["...", ...]}           JSON body, at most 1000 ids
    GET /                               the status page (self-contained HTML)
    GET /api/v1/status                  what the status page shows
    GET /healthz                        200 while the store answers (even with no
                                        bind up: transactions queue), else 503;
                                        no token needed
    GET /metrics                        Prometheus text (no token unless
                                        admin.metrics_public is false)

Every answer is JSON; errors are ``{"error": "..."}`` with 400, 401, 403,
404, 405 or 503. Scopes: ``admin.token`` reads and acts, ``admin.read_token``
only reads; tokens go in ``Authorization: Bearer <token>`` (never in a URL)
and are compared in constant time. Without any token reads are open (keep
the default loopback listener) and actions are refused. Every action is
written to the audit trail with the scope that did it. Phone numbers leave
masked. Queries run on the reactor's thread pool on their own connections
(never on the reactor thread, and not in the writer's transactions, so a
long report never delays an accept); actions go through the writer.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote

from sqlalchemy import Connection
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from typing_extensions import override

from smsgw.service.config import AdminConfig
from smsgw.service.config_alerts import IssuerConfig
from smsgw.service.status import STATUS_PAGE

__all__ = ["Actions", "AdminApi", "ApiError", "Reader", "access_log"]

T = TypeVar("T")
Reader = Callable[[Callable[[Connection], Any]], "defer.Deferred[Any]"]

log = Logger()


class Actions(Protocol):
    """What the admin API may do to the running gateway (each audited)."""

    def carriers(self) -> list[dict[str, Any]]: ...

    def has_carrier(self, name: str) -> bool: ...

    def pause(self, name: str, paused: bool, actor: str) -> defer.Deferred[bool]:
        """Pause or resume; fires with whether it changed, once audited."""
        ...

    def binds(self) -> tuple[int, int]:
        """(binds up, binds configured)."""
        ...

    def metrics(self) -> bytes:
        """The Prometheus text exposition."""
        ...

    def status(self) -> defer.Deferred[dict[str, Any]]:
        """What the status page shows (see smsgw.service.status)."""
        ...

    def test_alert(self, to: str, text: str, actor: str) -> defer.Deferred[str]:
        """Queue a test SMS; fires with its alert id once committed and audited."""
        ...

    def requeue(self, ids: tuple[str, ...], actor: str) -> defer.Deferred[int]:
        """Queue failed / expired alerts again; fires with how many."""
        ...


class ApiError(Exception):
    """An answer other than 200: status code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class AdminApi(Resource):
    """The whole API as one leaf resource (routing in `route`)."""

    isLeaf = True  # noqa: N815 (twisted.web's name)

    def __init__(
        self,
        cfg: AdminConfig,
        read: Reader,
        issuers: Sequence[IssuerConfig],
        clock_seconds: Callable[[], float],
        actions: Actions | None = None,
    ) -> None:
        super().__init__()
        self.tokens: list[tuple[bytes, str]] = [
            (t.reveal().encode(), scope)
            for t, scope in ((cfg.token, "admin"), (cfg.read_token, "read"))
            if t is not None
        ]
        self.actions = actions
        self.metrics_public = cfg.metrics_public
        self.read = read
        self.issuers = {i.name: i for i in issuers}
        self.default_issuer = issuers[0]
        self.seconds = clock_seconds

    # -- twisted.web -------------------------------------------------------

    def render_GET(self, request: Request) -> Any:  # noqa: N802 (twisted.web's name)
        if request.path == b"/":
            request.setHeader(b"content-type", b"text/html; charset=utf-8")
            request.setHeader(
                b"content-security-policy",
                b"default-src 'self'; script-src 'unsafe-inline'; "
                b"style-src 'unsafe-inline'",
            )
            request.setHeader(b"cache-control", b"no-store")
            return STATUS_PAGE
        if request.path == b"/healthz":
            return self._later(request, self._health())
        try:
            if request.path == b"/metrics":
                if not self.metrics_public:
                    self._authorize(request)
                request.setHeader(b"content-type", b"text/plain; version=0.0.4")
                return self._actions().metrics()
            self._authorize(request)
            d = self.route(request.path, _query(request))
        except ApiError as e:
            return _answer(request, e.code, {"error": str(e)})
        return self._later(request, d)

    def render_POST(self, request: Request) -> Any:  # noqa: N802 (twisted.web's name)
        try:
            scope = self._authorize(request)
            if scope != "admin":
                raise ApiError(
                    403,
                    "actions need the admin token (admin.token)"
                    if self.tokens
                    else "actions are disabled: set admin.token",
                )
            assert request.content is not None
            d = self.act(request.path, request.content.read(), scope)
        except ApiError as e:
            return _answer(request, e.code, {"error": str(e)})
        return self._later(request, d)

    def _later(self, request: Request, d: defer.Deferred[Any]) -> Any:
        finished: list[bool] = []
        request.notifyFinish().addBoth(lambda _: finished.append(True))

        def done(body: Any) -> None:
            if not finished:
                request.write(_answer(request, 200, body))
                request.finish()

        def failed(f: Failure) -> None:
            if finished:
                return
            if isinstance(f.value, ApiError):
                code, message = f.value.code, str(f.value)
            else:
                log.failure("admin request failed path={path}", f, path=request.path)
                code, message = 503, "the store could not answer"
            request.write(_answer(request, code, {"error": message}))
            request.finish()

        d.addCallbacks(done, failed)
        return NOT_DONE_YET

    @override
    def render(self, request: Request) -> Any:
        if request.method not in (b"GET", b"HEAD", b"POST"):
            request.setHeader(b"allow", b"GET, POST")
            return _answer(request, 405, {"error": "only GET and POST here"})
        return super().render(request)

    def _authorize(self, request: Request) -> str | None:
        """The request's scope ("admin" / "read"), None when no token is set."""
        if not self.tokens:
            return None
        header = request.getHeader(b"authorization") or b""
        scheme, _, given = header.partition(b" ")
        # Every token is compared, in constant time: how long a refusal
        # takes says nothing about which part of which token was right.
        found = None
        for token, scope in self.tokens:
            if hmac.compare_digest(given.strip(), token) and found is None:
                found = scope
        if scheme.lower() != b"bearer" or found is None:
            request.setHeader(b"www-authenticate", b'Bearer realm="smsgw"')
            raise ApiError(401, "a valid bearer token is required")
        return found

    # -- routing -------------------------------------------------------------

    def route(self, path: bytes, query: Mapping[str, str]) -> defer.Deferred[Any]:
        """The answer's body for ``path`` (raises ApiError for a bad request)."""
        parts = [unquote(p) for p in path.decode("utf-8", "replace").split("/") if p]
        if parts[:2] != ["api", "v1"]:
            raise ApiError(404, "no such endpoint (see /api/v1/...)")
        rest = parts[2:]
        if len(rest) == 2 and rest[0] == "transactions":
            return self._transaction(rest[1])
        if rest == ["feedback", "report"]:
            return self._report(query)
        if rest == ["feedback", "unmatched"]:
            return self._unmatched(query)
        if rest == ["carriers"]:
            return defer.succeed({"carriers": self._actions().carriers()})
        if rest == ["status"]:
            return self._actions().status()
        if rest == ["alerts"]:
            return self._alerts_to(query)
        raise ApiError(404, "no such endpoint")

    def _health(self) -> defer.Deferred[Any]:
        from sqlalchemy import text

        up, binds = self.actions.binds() if self.actions is not None else (0, 0)

        def answer(_: object) -> Any:
            return {"status": "ok", "store": "ok", "binds_up": up, "binds": binds}

        def down(f: Failure) -> Any:
            log.warn(
                "health: the store does not answer: {error}", error=f.getErrorMessage()
            )
            raise ApiError(503, "the store does not answer")

        d = self.read(lambda conn: conn.execute(text("SELECT 1")).scalar())
        return d.addCallbacks(answer, down)

    def _actions(self) -> Actions:
        if self.actions is None:
            raise ApiError(503, "this gateway has no carriers to act on")
        return self.actions

    def act(self, path: bytes, body: bytes, scope: str) -> defer.Deferred[Any]:
        """Carry out an action (raises ApiError for a bad request)."""
        parts = [unquote(p) for p in path.decode("utf-8", "replace").split("/") if p]
        actions = self._actions()
        actor = f"admin-api:{scope}"
        if parts[:3] == ["api", "v1", "carriers"] and len(parts) == 5:
            name, verb = parts[3], parts[4]
            if verb not in ("pause", "resume"):
                raise ApiError(404, "no such action (pause or resume)")
            if not actions.has_carrier(name):
                raise ApiError(404, f"no carrier {name!r}")
            changed = actions.pause(name, verb == "pause", actor)
            return changed.addCallback(
                lambda was: {"carrier": name, "paused": verb == "pause", "changed": was}
            )
        if parts == ["api", "v1", "alerts", "requeue"]:
            try:
                doc = json.loads(body or b"{}")
            except ValueError:
                raise ApiError(400, "body: not JSON") from None
            ids = doc.get("ids") if isinstance(doc, dict) else None
            if (
                not isinstance(ids, list)
                or not 1 <= len(ids) <= 1000
                or not all(isinstance(i, str) and 0 < len(i) <= 32 for i in ids)
            ):
                raise ApiError(400, 'body: {"ids": [...]} with 1 to 1000 alert ids')
            return actions.requeue(tuple(ids), actor).addCallback(
                lambda n: {"requeued": n}
            )
        if parts == ["api", "v1", "test-alert"]:
            from smsgw.alerts.plan import e164

            try:
                doc = json.loads(body or b"{}")
            except ValueError:
                raise ApiError(400, "body: not JSON") from None
            if not isinstance(doc, dict):
                raise ApiError(400, 'body: {"to": "+86...", "text": "..."}')
            to = e164(doc["to"]) if isinstance(doc.get("to"), str) else None
            if to is None:
                raise ApiError(400, "to: a phone number like +8613800138000")
            text = doc.get("text", "smsgw test message")
            if not isinstance(text, str) or not 1 <= len(text) <= 500:
                raise ApiError(400, "text: 1 to 500 characters")
            return actions.test_alert(to, text, actor).addCallback(
                lambda alert_id: {"queued": alert_id}
            )
        raise ApiError(404, "no such action")

    def _transaction(self, ref: str) -> defer.Deferred[Any]:
        from smsgw.store.feedback_report import transaction_feedback

        def found(body: Any) -> Any:
            if body is None:
                raise ApiError(404, f"no transaction {ref}")
            return body

        return self.read(lambda conn: transaction_feedback(conn, ref)).addCallback(
            found
        )

    def _alerts_to(self, query: Mapping[str, str]) -> defer.Deferred[Any]:
        from smsgw.alerts.plan import e164
        from smsgw.store.feedback_report import alerts_to, mask_msisdn

        raw = query.get("msisdn")
        number = e164(raw) if raw else None
        if number is None:
            raise ApiError(400, "msisdn: a phone number like +8613800138000")
        limit = _positive(query.get("limit", "50"), "limit")
        d = self.read(lambda conn: alerts_to(conn, number, limit=limit))
        return d.addCallback(
            lambda rows: {"msisdn": mask_msisdn(number), "alerts": rows}
        )

    def _issuer(self, query: Mapping[str, str]) -> IssuerConfig:
        name = query.get("issuer")
        if name is None:
            return self.default_issuer
        issuer = self.issuers.get(name)
        if issuer is None:
            raise ApiError(400, f"issuer: no issuer profile {name!r}")
        return issuer

    def _report(self, query: Mapping[str, str]) -> defer.Deferred[Any]:
        from smsgw.store.feedback_report import feedback_report

        issuer = self._issuer(query)
        zone = zoneinfo.ZoneInfo(issuer.timezone)
        today = dt.datetime.fromtimestamp(self.seconds(), zone).date()
        last = _date(query.get("to"), "to", today)
        first = _date(query.get("from"), "from", last - dt.timedelta(days=6))
        if first > last:
            raise ApiError(400, "from: must be on or before to")
        since = dt.datetime.combine(first, dt.time(), zone).timestamp()
        until = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), zone)

        def run(conn: Connection) -> Any:
            rows = feedback_report(
                conn,
                issuer=issuer.name,
                since=since,
                until=until.timestamp(),
                timezone=issuer.timezone,
                merchant_id=query.get("merchant"),
            )
            return {
                "issuer": issuer.name,
                "from": first.isoformat(),
                "to": last.isoformat(),
                "timezone": issuer.timezone,
                "days": [r.as_json() for r in rows],
            }

        return self.read(run)

    def _unmatched(self, query: Mapping[str, str]) -> defer.Deferred[Any]:
        from smsgw.store.feedback_report import unmatched_replies

        days = _positive(query.get("days", "7"), "days")
        limit = _positive(query.get("limit", "100"), "limit")
        issuer = self._issuer(query).name if "issuer" in query else None
        since = self.seconds() - days * 86400

        def run(conn: Connection) -> Any:
            replies = unmatched_replies(conn, since=since, limit=limit, issuer=issuer)
            return {"replies": list(replies)}

        return self.read(run)


def _query(request: Request) -> dict[str, str]:
    return {
        k.decode("utf-8", "replace"): v[0].decode("utf-8", "replace")
        for k, v in (request.args or {}).items()
        if v
    }


def _date(value: str | None, name: str, default: dt.date) -> dt.date:
    if value is None:
        return default
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ApiError(400, f"{name}: a date like 2026-11-29, got {value!r}") from None


def _positive(value: str, name: str) -> int:
    if not value.isdigit() or int(value) <= 0 or int(value) > 100_000:
        raise ApiError(400, f"{name}: a whole number from 1 to 100000, got {value!r}")
    return int(value)


def _answer(request: Request, code: int, body: Any) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps(body, ensure_ascii=False, default=str).encode() + b"\n"


def access_log(timestamp: str, request: Any) -> str:
    """An access log line without the query string: a phone number asked for
    in ``?msisdn=`` must not end up in the log."""
    from twisted.web.http import combinedLogFormatter

    class _Stripped:
        def __init__(self, inner: Any) -> None:
            self._inner = inner
            self.uri = inner.uri.split(b"?", 1)[0]

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    return combinedLogFormatter(timestamp, _Stripped(request))  # type: ignore[no-any-return]
