"""The store process: batch operations run in a child process of their own.

The gateway's reactor and its database work would share one GIL in one
process (facts.md: a database thread starves when the reactor is busy, and
the two pass the GIL back and forth for every message). So by default the
reactor hands each batch to a child process (``python -m smsgw.store.remote``,
the URL in ``SMSGW_STORE_URL``) over a pipe (smsgw.store.procwriter); the
child runs the operations (look-ups, alert rendering, inserts, commit) in
one transaction per batch, on its own core, and answers in order.

Wire format both ways: a 4-byte big-endian length, then a pickle. Request:
``[(op_name, run_or_None, items), ...]`` (``run`` is sent the first time an
operation is used); answer: ``("ok", [results, ...])`` or ``("error",
"description")``. The child exits when its input closes (the gateway ended,
even by SIGKILL); a commit it finishes after that is never acknowledged,
so at worst a terminal's retry is answered ``duplicate``.
"""

from __future__ import annotations

import gc
import os
import pickle
import struct
import sys
import time
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection

from smsgw.runtime import tune_gc
from smsgw.store.chain import forget, load_audit_signer, seal
from smsgw.store.keyring import attach_keyring

__all__ = ["FrameReader", "describe_error", "encode_frame", "split_frames"]

_LENGTH = struct.Struct(">I")

# A full collection at most this often (seconds), after an answer is sent.
# With the gateway's collector settings (smsgw.runtime) a quiet store process
# (an SMSC outage: a claim a second, a lease renewal every 20 s) allocates
# too little to ever trigger one, and garbage in reference cycles (the
# database libraries leave some) would pile up for as long as it stays quiet.
COLLECT_EVERY = 60.0


def encode_frame(value: object) -> bytes:
    """One frame: a 4-byte big-endian length, then the pickle of ``value``."""
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def split_frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Whole frames' payloads from ``buffer``, and the incomplete rest."""
    frames: list[bytes] = []
    at, end = 0, len(buffer)
    while end - at >= 4:
        (n,) = _LENGTH.unpack_from(buffer, at)
        if end - at - 4 < n:
            break
        frames.append(buffer[at + 4 : at + 4 + n])
        at += 4 + n
    return frames, buffer[at:]


class FrameReader:
    """Frames from a byte stream that arrives in pieces of any size."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._need = 4  # bytes the next frame needs, its length included

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the payloads of the frames now complete."""
        buffer = self._buffer
        buffer += data
        if len(buffer) < self._need:
            return []  # most pieces of a big answer: nothing to parse yet
        frames: list[bytes] = []
        at, end = 0, len(buffer)
        while end - at >= 4:
            (n,) = _LENGTH.unpack_from(buffer, at)
            if end - at - 4 < n:
                self._need = 4 + n
                break
            frames.append(bytes(buffer[at + 4 : at + 4 + n]))
            at += 4 + n
        else:
            self._need = 4
        del buffer[:at]
        return frames


def _write(out: IO[bytes], value: object) -> None:
    out.write(encode_frame(value))
    out.flush()


def _read(inp: IO[bytes]) -> Any:
    head = inp.read(4)
    if len(head) < 4:
        raise EOFError
    (n,) = _LENGTH.unpack(head)
    data = inp.read(n)
    if len(data) < n:
        raise EOFError
    return pickle.loads(data)


def describe_error(e: BaseException) -> str:
    """The first line of an error (SQL parameters are hidden by the engine)."""
    lines = str(getattr(e, "orig", None) or e).splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"


def _serve(url: str, inp: IO[bytes], out: IO[bytes]) -> None:
    from smsgw.store.db import make_engine

    keys_dir = os.environ.get("SMSGW_KEYS_DIR")
    engine = make_engine(url, hide_parameters=True)
    # The keys are read here from keys_dir, never sent over the socket; the
    # database says which ones write, as for the gateway.
    if keys_dir:
        attach_keyring(engine, Path(keys_dir), create=False)
    signer = load_audit_signer(Path(keys_dir)) if keys_dir else None
    tune_gc()
    ops: dict[str, Any] = {}
    collected = time.monotonic()
    while True:
        try:
            request = _read(inp)
        except EOFError:
            break
        try:
            results = []
            with engine.begin() as conn:
                forget(conn)  # marks a failed batch may have left
                for name, run, items in request:
                    if run is not None:
                        ops[name] = run
                    results.append(_run(ops[name], conn, items))
                if signer is not None:
                    # The store process has no reactor clock: wall time
                    # stamps the chain entries (ordering is by seq).
                    seal(conn, signer, time.time())
            _write(out, ("ok", results))
        except Exception as e:
            _write(out, ("error", describe_error(e)))
        if time.monotonic() - collected > COLLECT_EVERY:
            gc.collect()
            collected = time.monotonic()
    engine.dispose()


def _run(run: Any, conn: Connection, items: list[Any]) -> list[Any]:
    out = list(run(conn, items))
    if len(out) != len(items):
        raise RuntimeError(f"an operation returned {len(out)} results for {len(items)}")
    return out


if __name__ == "__main__":  # pragma: no cover (run as a child process)
    _serve(os.environ["SMSGW_STORE_URL"], sys.stdin.buffer, sys.stdout.buffer)
