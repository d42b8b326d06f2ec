"""The shared parts of the registry commands: their run context and output.

`Run` holds what a command works with (configuration, engine, streams,
clock); `BadInput` is a problem with the command's input (exit status 2).
Output is a text table (CJK characters two columns wide) or JSON lines; CSV
goes to and from files or the standard streams.
"""

from __future__ import annotations

import argparse
import json
import os
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO, cast

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine
    from twisted.internet.interfaces import IReactorTime

    from smsgw.service.config import Config
    from smsgw.store.keys import CardHasher

__all__ = [
    "MAX_ERRORS_SHOWN",
    "BadInput",
    "Handler",
    "Run",
    "json_lines",
    "reading",
    "show_import_errors",
    "table",
    "text_width",
    "writing",
]

MAX_ERRORS_SHOWN = 100


class BadInput(Exception):
    """A problem with the command's input (exit status 2)."""


@dataclass
class Run:
    """What a command works with: config, engine (its connections carry the
    msisdn keys, smsgw.store.pii), streams and clock."""

    cfg: Config
    engine: Engine | None
    out: TextIO
    err: TextIO
    inp: TextIO
    clock: IReactorTime | None
    _hasher: CardHasher | None = field(default=None, init=False)

    @property
    def issuers(self) -> tuple[str, ...]:
        """The configured issuer profile names, the default first."""
        return tuple(i.name for i in self.cfg.issuers)

    def now(self) -> float:
        """The current time from the clock (the reactor's when none was given)."""
        if self.clock is None:
            from twisted.internet import reactor

            self.clock = cast("IReactorTime", reactor)
        return self.clock.seconds()

    def use_hasher(self, hasher: CardHasher) -> None:
        """Hash cards with ``hasher`` (the keyring's active card-hash key)."""
        self._hasher = hasher

    def hasher(self) -> CardHasher:
        """The card-hash key from ``keys_dir``, generated as on first start
        (commands without a database: the newest)."""
        if self._hasher is None:
            from smsgw.store.keys import load_card_hasher

            try:
                self._hasher = load_card_hasher(self.cfg.keys_dir)
            except OSError as exc:
                raise BadInput(f"keys_dir {self.cfg.keys_dir}: {exc}") from None
        return self._hasher

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in one transaction (committed unless an error escapes)."""
        assert self.engine is not None
        with self.engine.begin() as conn:
            yield conn


Handler = Callable[[Run, argparse.Namespace], int]


def text_width(text: str) -> int:
    """Columns ``text`` takes in a terminal (CJK characters take two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def table(out: TextIO, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Write ``rows`` as a left-aligned text table under ``header``."""
    widths = [
        max(text_width(r[i]) for r in [header, *rows]) for i in range(len(header))
    ]
    for row in [header, *rows]:
        cells = [
            c + " " * (w - text_width(c)) for c, w in zip(row, widths, strict=True)
        ]
        out.write("  ".join(cells).rstrip() + "\n")


def json_lines(out: TextIO, items: Sequence[dict[str, Any]]) -> None:
    """Write each of ``items`` as one line of JSON (non-ASCII kept as is)."""
    for item in items:
        out.write(json.dumps(item, ensure_ascii=False) + "\n")


@contextmanager
def writing(run: Run, path: str) -> Iterator[TextIO]:
    """``path`` ("-": standard output) to write CSV to; a file gets mode 0600
    (phone numbers are personal data). Raises BadInput when it cannot."""
    if path == "-":
        yield run.out
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise BadInput(f"{path}: cannot write: {exc.strerror}") from None
    with open(fd, "w", encoding="utf-8", newline="") as f:
        yield f


@contextmanager
def reading(run: Run, path: str) -> Iterator[TextIO]:
    """``path`` ("-": standard input) to read CSV from, a UTF-8 BOM tolerated.

    Raises BadInput when it cannot be opened.
    """
    if path == "-":
        yield run.inp
        return
    try:
        # Opened apart from the `with` below so that only a failed open, not
        # an error while reading, is reported as "cannot read".
        f = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115
    except OSError as exc:
        raise BadInput(f"{path}: cannot read: {exc.strerror}") from None
    with f:
        yield f


def show_import_errors(
    err: TextIO, prog: str, path: str, errors: Sequence[str]
) -> None:
    """Report a refused import: the first MAX_ERRORS_SHOWN errors and a count."""
    err.write(f"{prog}: {path}: {len(errors)} problem(s), nothing imported:\n")
    for error in errors[:MAX_ERRORS_SHOWN]:
        err.write(f"  {error}\n")
    if len(errors) > MAX_ERRORS_SHOWN:
        err.write(f"  ... and {len(errors) - MAX_ERRORS_SHOWN} more\n")
