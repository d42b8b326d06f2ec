"""The store process: batch operations run in a child process of their own.

The gateway's reactor and its database work would share one GIL in one
process (facts.md: a database thread starves when the reactor is busy, and
the two pass the GIL back and forth for every message). So by default the
writer thread only hands each batch to a child process
(``python -m smsgw.store.remote URL``) over a pipe and waits for the answer;
the child runs the operations (look-ups, alert rendering, inserts, commit)
in one transaction per batch, on its own core.

Wire format both ways: a 4-byte big-endian length, then a pickle. Request:
``[(op_name, run_or_None, items), ...]`` (``run`` is sent the first time an
operation is used); answer: ``("ok", [results, ...])`` or ``("error",
"description")``. The child exits when its input closes (the gateway ended,
even by SIGKILL); a commit it finishes after that is never acknowledged,
so at worst a terminal's retry is answered ``duplicate``.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Sequence
from typing import IO, Any

from sqlalchemy import Connection

__all__ = ["RemoteStore", "StoreProcessError", "describe_error"]

_LENGTH = struct.Struct(">I")
Groups = Sequence[tuple[Any, list[Any]]]


class StoreProcessError(RuntimeError):
    """The store process failed a batch, or could not be reached."""


def _write(out: IO[bytes], value: object) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_LENGTH.pack(len(data)) + data)
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


class RemoteStore:
    """The writer thread's side of the store process (blocking calls)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._proc: subprocess.Popen[bytes] | None = None
        self._known: set[str] = set()

    def _start(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ, SMSGW_STORE_URL=self.url)
        self._known = set()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "smsgw.store.remote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        return self._proc

    def run(self, groups: Groups) -> list[list[Any]]:
        """Run each (BatchOp, items) group in one transaction in the child.

        Raises StoreProcessError when the batch fails or the child is gone
        (it is started again for the next batch).
        """
        proc = self._proc
        if proc is None or proc.poll() is not None:
            proc = self._start()
        assert proc.stdin is not None
        assert proc.stdout is not None
        request = []
        for op, items in groups:
            first = op.name not in self._known
            request.append((op.name, op.run if first else None, items))
        try:
            _write(proc.stdin, request)
            status, value = _read(proc.stdout)
        except (OSError, EOFError) as e:
            self._proc = None
            proc.kill()  # it may be alive but unreadable; never leave a zombie
            proc.wait()
            raise StoreProcessError(f"the store process ended ({e!r})") from None
        if status != "ok":
            raise StoreProcessError(value)
        self._known.update(op.name for op, _ in groups)
        return list(value)

    def close(self) -> None:
        """Close the child's input and wait for it to end."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def describe_error(e: BaseException) -> str:
    """The first line of an error (SQL parameters are hidden by the engine)."""
    lines = str(getattr(e, "orig", None) or e).splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"


def _serve(url: str, inp: IO[bytes], out: IO[bytes]) -> None:
    from smsgw.store.db import make_engine

    engine = make_engine(url, hide_parameters=True)
    ops: dict[str, Any] = {}
    while True:
        try:
            request = _read(inp)
        except EOFError:
            break
        try:
            results = []
            with engine.begin() as conn:
                for name, run, items in request:
                    if run is not None:
                        ops[name] = run
                    results.append(_run(ops[name], conn, items))
            _write(out, ("ok", results))
        except Exception as e:
            _write(out, ("error", describe_error(e)))
    engine.dispose()


def _run(run: Any, conn: Connection, items: list[Any]) -> list[Any]:
    out = list(run(conn, items))
    if len(out) != len(items):
        raise RuntimeError(f"an operation returned {len(out)} results for {len(items)}")
    return out


if __name__ == "__main__":  # pragma: no cover (run as a child process)
    _serve(os.environ["SMSGW_STORE_URL"], sys.stdin.buffer, sys.stdout.buffer)
