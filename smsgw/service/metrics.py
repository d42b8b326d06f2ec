"""Prometheus metrics, read from the gateway's own counters at scrape time.

Nothing is observed per message: the intake, dispatcher, carriers, replies
and store writer already count what they do, and this collector turns those
counters into metrics only when ``/metrics`` is scraped, so the hot path pays
nothing for them. Every name starts with ``smsgw_``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from typing_extensions import override

if TYPE_CHECKING:
    from smsgw.service.gateway import Gateway

__all__ = ["GatewayCollector", "metrics_text"]


class GatewayCollector(Collector):
    """The gateway's counters as Prometheus metric families."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    @override
    def collect(self) -> Iterator[Metric]:
        gw = self.gateway
        intake = CounterMetricFamily(
            "smsgw_intake_requests",
            "Intake requests by result (accepted, duplicate, the error codes, pong)",
            labels=["result"],
        )
        for result, n in sorted(gw.intake.counts.items()):
            intake.add_metric([result], n)
        yield intake
        alerts = CounterMetricFamily(
            "smsgw_alerts",
            "Alerts by dispatch outcome (submitted, retried, failed, expired)",
            labels=["outcome"],
        )
        for outcome, n in sorted(gw.dispatcher.counts.items()):
            alerts.add_metric([outcome], n)
        yield alerts
        statuses = GaugeMetricFamily(
            "smsgw_alerts_by_status",
            "Alerts in the store by status (counted every 30 s)",
            labels=["status"],
        )
        for status, n in sorted(gw.alert_statuses.items()):
            statuses.add_metric([status], n)
        yield statuses
        yield GaugeMetricFamily(
            "smsgw_dispatch_held",
            "Alerts this process holds to send (claimed, not yet recorded sent)",
            value=gw.dispatcher.held,
        )
        yield GaugeMetricFamily(
            "smsgw_dispatch_unconfirmed",
            "Alerts submitted and not yet recorded as sent (the crash-duplicate bound)",
            value=gw.dispatcher.unconfirmed,
        )
        yield from self._carriers()
        writer = gw.writer
        yield CounterMetricFamily(
            "smsgw_store_commits", "Store batches committed", value=writer.commits
        )
        yield CounterMetricFamily(
            "smsgw_store_writes", "Writes committed (in batches)", value=writer.written
        )
        yield GaugeMetricFamily(
            "smsgw_store_pending",
            "Writes waiting for their commit",
            value=writer.pending,
        )
        yield CounterMetricFamily(
            "smsgw_replies_received", "MO parts received", value=gw.replies.received
        )
        feedback = CounterMetricFamily(
            "smsgw_feedback",
            "Replies by class (confirm, not_me, stop, help, text)",
            labels=["class"],
        )
        for kind, n in sorted(gw.replies.classes.items()):
            feedback.add_metric([kind], n)
        yield feedback
        stats = writer.stats
        for name, text, hist in (
            (
                "smsgw_store_batch_seconds",
                "Store batches: from leaving the gateway to the committed answer",
                stats.seconds,
            ),
            (
                "smsgw_store_batch_writes",
                "Store batches: writes per batch",
                stats.sizes,
            ),
        ):
            family = HistogramMetricFamily(name, text)
            family.add_metric([], hist.cumulative(), sum_value=hist.sum)
            yield family

    def _carriers(self) -> Iterator[Metric]:
        gw = self.gateway
        up = GaugeMetricFamily("smsgw_binds_up", "Binds up", labels=["carrier"])
        window = GaugeMetricFamily(
            "smsgw_window_in_use", "submit_sm awaiting their resp", labels=["carrier"]
        )
        queued = GaugeMetricFamily(
            "smsgw_carrier_queued", "Parts queued for the carrier", labels=["carrier"]
        )
        counters = {
            name: CounterMetricFamily(f"smsgw_carrier_{name}", text, labels=["carrier"])
            for name, text in (
                ("submitted", "submit_sm sent"),
                ("accepted", "submit_sm answered ESME_ROK"),
                ("throttled", "submit_sm answered throttled or queue full"),
                ("receipts", "Delivery receipts received"),
                ("mo", "MO messages received"),
            )
        }
        for name, service in gw.carriers.items():
            sender = service.sender
            up.add_metric([name], service.bound)
            window.add_metric(
                [name],
                sum(b.tx.in_window for b in service.binds if b.tx is not None),
            )
            queued.add_metric([name], len(sender.queue))
            counters["submitted"].add_metric([name], sender.submitted)
            counters["accepted"].add_metric([name], sender.accepted)
            counters["throttled"].add_metric([name], sender.throttled)
            counters["receipts"].add_metric([name], service.deliveries.receipts)
            counters["mo"].add_metric([name], service.deliveries.mo)
        latency = HistogramMetricFamily(
            "smsgw_submit_resp_seconds",
            "From submit_sm sent to its submit_sm_resp",
            labels=["carrier"],
        )
        receipts = CounterMetricFamily(
            "smsgw_receipts_by_state",
            "Delivery receipts by state (DELIVRD, UNDELIV, ...)",
            labels=["carrier", "state"],
        )
        for name, service in gw.carriers.items():
            hist = service.sender.latency
            latency.add_metric([name], hist.cumulative(), sum_value=hist.sum)
            for state, n in sorted(service.deliveries.states.items()):
                receipts.add_metric([name, state], n)
        yield up
        yield window
        yield queued
        yield latency
        yield receipts
        yield from counters.values()


def metrics_text(gateway: Gateway) -> bytes:
    """The Prometheus text exposition of ``gateway``'s metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(gateway))
    return generate_latest(registry)
