"""What the admin API may do to the running gateway; every action audited."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from smsgw.store.admin_ops import (
    AuditEntry,
    Requeue,
    TestAlert,
    audit_op,
    requeue_op,
    test_alert_op,
)

if TYPE_CHECKING:
    from smsgw.service.gateway import Gateway

__all__ = ["GatewayActions"]


class GatewayActions:
    """The admin API's `Actions` over a `Gateway`."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def carriers(self) -> list[dict[str, Any]]:
        out = []
        links = self.gateway.dispatcher.links
        for name, service in self.gateway.carriers.items():
            sender = service.sender
            out.append(
                {
                    "name": name,
                    "binds": service.cfg.binds,
                    "bound": service.bound,
                    "paused": bool(getattr(links.get(name), "paused", False)),
                    "tps": service.cfg.tps,
                    "window": service.cfg.window,
                    "queued": len(sender.queue),
                    "submitted": sender.submitted,
                    "accepted": sender.accepted,
                    "throttled": sender.throttled,
                    "resent": sender.resent,
                }
            )
        return out

    def binds(self) -> tuple[int, int]:
        carriers = self.gateway.carriers.values()
        return sum(s.bound for s in carriers), sum(s.cfg.binds for s in carriers)

    def metrics(self) -> bytes:
        from smsgw.service.metrics import metrics_text

        return metrics_text(self.gateway)

    def status(self) -> defer.Deferred[dict[str, Any]]:
        from sqlalchemy import text

        gw = self.gateway
        now = gw.reactor.seconds()
        states: dict[str, int] = {}
        for service in gw.carriers.values():
            for state, n in service.deliveries.states.items():
                states[state] = states.get(state, 0) + n
        final = sum(n for s, n in states.items() if s not in ("ENROUTE", "ACCEPTD"))
        classes = dict(gw.replies.classes)
        carriers = self.carriers()
        for view in carriers:
            binds = gw.carriers[view["name"]].binds
            view["window_in_use"] = sum(
                b.tx.in_window for b in binds if b.tx is not None
            )

        def queue(conn: Any) -> dict[str, Any]:
            row = conn.execute(
                text(
                    "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM alerts "
                    "WHERE status = 'queued'"
                )
            ).one()
            return {
                "queued": int(row.n),
                "oldest_seconds": None
                if row.oldest is None
                else round(now - row.oldest),
            }

        def build(q: dict[str, Any]) -> dict[str, Any]:
            return {
                "store": "ok",
                "queue": q,
                "carriers": carriers,
                "rates": gw.history.rates(),
                "delivery": {
                    "receipts": states,
                    "delivered_rate": round(states.get("DELIVRD", 0) / final, 4)
                    if final
                    else None,
                },
                "feedback": {"total": sum(classes.values()), "classes": classes},
                "problems": list(gw.problems.events),
            }

        return gw._read(queue).addCallback(build)

    def test_alert(self, to: str, text: str, actor: str) -> defer.Deferred[str]:
        from smsgw.store.feedback_report import mask_msisdn

        gw = self.gateway
        cfg = gw.cfg.dispatch
        issuer = gw.cfg.issuers[0]
        now = gw.reactor.seconds()
        item = TestAlert(
            to, text, issuer.name, issuer.source_addr, cfg.node, now, cfg.lease, cfg.ttl
        )

        def queued(alert: Any) -> defer.Deferred[str]:
            gw.dispatcher.add([alert])
            entry = AuditEntry(
                now, actor, "alert.test", mask_msisdn(to) or "", {"alert": alert.id}
            )
            return gw.writer.submit(audit_op, entry).addCallback(lambda _: alert.id)

        return gw.writer.submit(test_alert_op, item).addCallback(queued)

    def has_carrier(self, name: str) -> bool:
        return name in self.gateway.carriers

    def pause(self, name: str, paused: bool, actor: str) -> defer.Deferred[bool]:
        link: Any = self.gateway.dispatcher.links[name]
        changed = link.paused != paused
        link.paused = paused
        if not paused:
            self.gateway.dispatcher.poke()  # what waited for it goes now
        entry = AuditEntry(
            self.gateway.reactor.seconds(),
            actor,
            "carrier.pause" if paused else "carrier.resume",
            name,
            {"changed": changed},
        )
        d = self.gateway.writer.submit(audit_op, entry)
        return d.addCallback(lambda _: changed)

    def requeue(self, ids: tuple[str, ...], actor: str) -> defer.Deferred[int]:
        gw = self.gateway
        cfg = gw.cfg.dispatch
        now = gw.reactor.seconds()
        d = gw.writer.submit(
            requeue_op, Requeue(ids, cfg.node, now, cfg.lease, cfg.ttl)
        )

        def queued(alerts: list[Any]) -> defer.Deferred[int]:
            if alerts:
                gw.dispatcher.add(alerts)
            entry = AuditEntry(
                now,
                actor,
                "alerts.requeue",
                f"{len(alerts)} of {len(ids)} alerts",
                {"ids": [a.id for a in alerts]},
            )
            return gw.writer.submit(audit_op, entry).addCallback(lambda _: len(alerts))

        return d.addCallback(queued)
