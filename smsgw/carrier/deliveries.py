"""What a carrier delivers: receipts told apart from MO messages.

The session answers every deliver_sm / data_sm with what ``deliver`` returns;
this module decides which callback gets it. Receipts carry the message id in
the canonical form of the carrier profile (``normalize_message_id``), so a
receipt matches its submit_sm_resp whatever hex/decimal mix the SMSC uses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet import defer
from twisted.logger import Logger

from smsgw.carrier.profile import normalize_message_id
from smsgw.codec import pdu as P
from smsgw.codec.constants import Status
from smsgw.codec.receipt import Receipt, is_receipt, parse_receipt

Answer = int | defer.Deferred[int]


@dataclass(frozen=True, slots=True)
class ReceiptEvent:
    """One delivery receipt: ``message_id`` normalised per carrier profile."""

    carrier: str
    message_id: str
    receipt: Receipt


@dataclass(frozen=True, slots=True)
class MoEvent:
    """One mobile-originated message (a cardholder's reply), undecoded."""

    carrier: str
    pdu: P.DeliverSm | P.DataSm


class CarrierDeliveries:
    """A session DeliveryHandler that routes receipts and MO messages."""

    log = Logger()

    def __init__(
        self,
        carrier: str,
        receipt_id_format: str,
        on_receipt: Callable[[ReceiptEvent], Answer],
        on_mo: Callable[[MoEvent], Answer],
    ) -> None:
        self.carrier = carrier
        self.receipt_id_format = receipt_id_format
        self.on_receipt = on_receipt
        self.on_mo = on_mo
        self.receipts = 0
        self.states: dict[str, int] = {}  # receipts by state (DELIVRD, ...)
        self.mo = 0
        self.unreadable = 0

    def deliver(self, pdu: P.DeliverSm | P.DataSm) -> Answer:
        """Hand the PDU to the right callback; return the status to answer."""
        if is_receipt(pdu):
            receipt = parse_receipt(pdu)
            if receipt is None:
                # Acknowledge it anyway: refusing would only make the SMSC
                # deliver the same unreadable receipt again and again.
                self.unreadable += 1
                self.log.warn(
                    "unreadable receipt carrier={carrier} seq={seq}",
                    carrier=self.carrier,
                    seq=pdu.sequence_number,
                )
                return int(Status.ESME_ROK)
            self.receipts += 1
            self.states[receipt.state] = self.states.get(receipt.state, 0) + 1
            message_id = normalize_message_id(
                receipt.message_id, self.receipt_id_format
            )
            return self.on_receipt(ReceiptEvent(self.carrier, message_id, receipt))
        self.mo += 1
        return self.on_mo(MoEvent(self.carrier, pdu))
