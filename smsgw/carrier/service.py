"""One carrier as a Twisted service: its binds and the sender that feeds them."""

from __future__ import annotations

from collections.abc import Callable

from twisted.application.internet import backoffPolicy
from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.endpoints import clientFromString
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from typing_extensions import override

from smsgw.carrier.bind import Bind
from smsgw.carrier.compose import Address, source_address
from smsgw.carrier.deliveries import Answer, CarrierDeliveries, MoEvent, ReceiptEvent
from smsgw.carrier.profile import normalize_message_id
from smsgw.carrier.sender import CarrierSender
from smsgw.service.config import CarrierConfig
from smsgw.session.esme import SessionSettings

EndpointFactory = Callable[[str], IStreamClientEndpoint]


def session_settings(cfg: CarrierConfig, max_pdu: int = 65536) -> SessionSettings:
    """The session settings a carrier's configuration implies."""
    return SessionSettings(
        system_id=cfg.system_id,
        password=cfg.password.reveal(),
        system_type=cfg.system_type,
        bind_mode="transceiver",
        window=cfg.window,
        response_timeout=cfg.response_timeout,
        enquire_interval=cfg.enquire_interval,
        max_pdu=max_pdu,
        name=cfg.name,
    )


class CarrierService(MultiService):
    """A carrier's binds (``cfg.binds`` of them) and its sender.

    ``endpoint_for(description)`` turns an endpoint string into a client
    endpoint (``clientFromString`` with the reactor, in production).
    """

    def __init__(
        self,
        cfg: CarrierConfig,
        clock: IReactorTime,
        endpoint_for: EndpointFactory,
        on_receipt: Callable[[ReceiptEvent], Answer],
        on_mo: Callable[[MoEvent], Answer],
        *,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.setName(cfg.name)
        self.deliveries = CarrierDeliveries(
            cfg.name, cfg.profile.message_id.receipt, on_receipt, on_mo
        )
        policy_args = {} if jitter is None else {"jitter": jitter}
        policy = backoffPolicy(
            initialDelay=cfg.reconnect_initial / 1.5,  # first retry after initial
            maxDelay=cfg.reconnect_max,
            **policy_args,  # type: ignore[arg-type]
        )
        settings = session_settings(cfg)
        pair = cfg.bind == "transmitter+receiver"
        self.binds: list[Bind] = []
        for i in range(cfg.binds):
            bind = Bind(
                name=cfg.name if cfg.binds == 1 else f"{cfg.name}#{i + 1}",
                settings=settings,
                endpoint=endpoint_for(cfg.connect),
                rx_endpoint=endpoint_for(cfg.connect_rx) if cfg.connect_rx else None,
                pair=pair,
                clock=clock,
                retry_policy=policy,
                handler=self.deliveries,
            )
            bind.setServiceParent(self)
            self.binds.append(bind)
        self.sender = CarrierSender(cfg.name, self.binds, clock, tps=cfg.tps)
        self.source: Address = source_address(
            cfg.source_addr, cfg.profile, cfg.source_addr_ton, cfg.source_addr_npi
        )

    def resp_id(self, raw: str) -> str:
        """A submit_sm_resp message id in the canonical form receipts use."""
        return normalize_message_id(raw, self.cfg.profile.message_id.submit_resp)

    @property
    def bound(self) -> int:
        """How many of this carrier's binds can submit now."""
        return self.sender.bound

    @override
    def stopService(self) -> defer.Deferred[None]:
        """Unbind every bind (outstanding submits are answered first), then
        answer whatever is still queued ``stopped``."""
        d: defer.Deferred[None] = defer.maybeDeferred(MultiService.stopService, self)
        d.addBoth(lambda _: self.sender.stop())
        return d


def reactor_endpoints(reactor: object) -> EndpointFactory:
    """An EndpointFactory over Twisted's endpoint strings for ``reactor``."""

    def endpoint_for(description: str) -> IStreamClientEndpoint:
        endpoint: IStreamClientEndpoint = clientFromString(reactor, description)
        return endpoint

    return endpoint_for
