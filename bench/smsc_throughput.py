"""Measure how many submit_sm per second the SMSC simulator's protocol handles.

In-process, one core: N encoded submit_sm frames (receipts requested) are fed
into one bound SmscProtocol over a StringTransport, in chunks like a pipelined
TCP connection delivers them, with a task.Clock advanced between chunks so the
receipt timer fires and receipts are encoded and written too. Prints submits/s.

Usage: .venv/bin/python bench/smsc_throughput.py [--count N] [--chunk K]
"""

from __future__ import annotations

import argparse
import time

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from smsgw.codec import pdu as P
from smsgw.smsc.factory import SmscFactory
from smsgw.smsc.settings import SmscSettings


def run(count: int, chunk: int, receipts: bool) -> float:
    """Feed ``count`` submits in chunks of ``chunk``; return submits per second."""
    clock = Clock()
    clock.advance(1_732_860_000.0)
    factory = SmscFactory(SmscSettings(receipt_delay=0.01, keep_received=10_000), clock)
    factory.doStart()
    proto = factory.buildProtocol(None)
    transport = StringTransport()
    proto.makeConnection(transport)
    bind = P.BindTransceiver(sequence_number=1, system_id="smsgw", password="secret")
    proto.dataReceived(P.encode(bind))
    text = b"XX Bank: Card *1234 used for CNY 100.00 at STARBUCKS SHANGHAI on 29Nov"
    frames = [
        P.encode(
            P.SubmitSm(
                sequence_number=i + 2,
                source_addr="95588",
                dest_addr_ton=1,
                dest_addr_npi=1,
                destination_addr=f"86138{i % 100_000_000:08d}",
                registered_delivery=1 if receipts else 0,
                short_message=text,
            )
        )
        for i in range(count)
    ]
    blobs = [b"".join(frames[i : i + chunk]) for i in range(0, count, chunk)]
    start = time.perf_counter()
    for blob in blobs:
        proto.dataReceived(blob)
        clock.advance(0.002)  # receipts fall due and are flushed as they would be
        transport.clear()
    clock.advance(1.0)
    elapsed = time.perf_counter() - start
    assert factory.submits == count
    assert not receipts or factory.receipts_sent == count
    proto.connectionLost(None)  # type: ignore[arg-type]
    factory.doStop()
    return count / elapsed


def main() -> None:
    """Parse options, run the measurement, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    ns = parser.parse_args()
    for receipts in (True, False):
        best = max(run(ns.count, ns.chunk, receipts) for _ in range(ns.repeat))
        label = "with receipts" if receipts else "no receipts  "
        print(f"submit_sm {label}: {best:,.0f}/s ({1e6 / best:.1f} us per submit)")


if __name__ == "__main__":
    main()
