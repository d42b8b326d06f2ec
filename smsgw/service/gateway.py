"""Assemble the gateway's services from a validated Config.

The only place (with tap.py and the CLI) that is handed the real reactor.
Later capabilities (store, intake, admin) plug in here.
"""

from __future__ import annotations

from twisted.application.service import MultiService
from twisted.logger import Logger

from smsgw.carrier.deliveries import Answer, MoEvent, ReceiptEvent
from smsgw.carrier.service import CarrierService, reactor_endpoints
from smsgw.codec.constants import Status
from smsgw.service.config import Config, SimulatorConfig
from smsgw.smsc.service import make_smsc_service
from smsgw.smsc.settings import SmscSettings

log = Logger()


def simulator_settings(sim: SimulatorConfig) -> SmscSettings:
    """SmscSettings for the simulator section of the gateway's config."""
    return SmscSettings(
        listen=sim.listen,
        control=sim.control,
        accounts=((sim.system_id, sim.password.reveal()),),
        id_format=sim.id_format,
        receipt_delay=sim.receipt_delay,
        receipt_state=sim.receipt_state,
        throttle_fraction=sim.throttle_fraction,
        max_tps=sim.max_tps,
    )


class Gateway(MultiService):
    """The running gateway: simulator (when enabled) and carriers."""

    def __init__(self, cfg: Config, reactor: object) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.simulator.enabled:
            self.smsc = make_smsc_service(simulator_settings(cfg.simulator), reactor)
            self.smsc.setServiceParent(self)
        endpoints = reactor_endpoints(reactor)
        self.carriers: dict[str, CarrierService] = {}
        for carrier in cfg.carriers:
            if not carrier.enabled:
                continue
            service = CarrierService(
                carrier,
                reactor,  # type: ignore[arg-type]
                endpoints,
                self.receipt_received,
                self.mo_received,
            )
            service.setServiceParent(self)
            self.carriers[carrier.name] = service

    def receipt_received(self, event: ReceiptEvent) -> Answer:
        """Record one delivery receipt (logged until the store records it)."""
        r = event.receipt
        log.info(
            "receipt carrier={carrier} message_id={message_id} state={state}",
            carrier=event.carrier,
            message_id=event.message_id,
            state=r.state,
            error=r.error,
        )
        return int(Status.ESME_ROK)

    def mo_received(self, event: MoEvent) -> Answer:
        """Record one MO message (logged until the feedback module takes it)."""
        log.info(
            "mo carrier={carrier} source={source} data_coding={data_coding}",
            carrier=event.carrier,
            source=event.pdu.source_addr,
            data_coding=event.pdu.data_coding,
        )
        return int(Status.ESME_ROK)
