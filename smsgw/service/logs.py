"""Log observers for ``twistd --logger=...``.

``twistd --logger=smsgw.service.logs.configured smsgw --config FILE`` follows
the config's ``logging`` section (level; ``text`` or ``json``). ``json_stdout``
and ``text_stdout`` take the level from SMSGW_LOG_LEVEL instead. JSON output is
one object per event (twisted.logger's format) for log shippers; the named
fields of each event (carrier, seq, message_id, ref) become JSON keys.
"""

from __future__ import annotations

import os
import sys

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    jsonFileLogObserver,
    textFileLogObserver,
)

_configured: tuple[str, str] | None = None  # (level, format) from the config


def configure(level: str, fmt: str) -> None:
    """Remember the config's logging choice for ``configured()``."""
    global _configured
    _configured = (level, fmt)


def _level(name: str | None = None) -> LogLevel:
    name = (name or os.environ.get("SMSGW_LOG_LEVEL", "info")).lower()
    try:
        level: LogLevel = LogLevel.levelWithName(name)
    except Exception:  # InvalidLogLevelError: fall back rather than lose logs
        level = LogLevel.info
    return level


def _filtered(observer: ILogObserver, level: str | None = None) -> ILogObserver:
    return FilteringLogObserver(
        observer, [LogLevelFilterPredicate(defaultLogLevel=_level(level))]
    )


def configured() -> ILogObserver:
    """stdout in the config's format at the config's level (info/text if unset)."""
    level, fmt = _configured or ("info", "text")
    if fmt == "json":
        return _filtered(jsonFileLogObserver(sys.stdout, recordSeparator=""), level)
    return _filtered(textFileLogObserver(sys.stdout), level)


def json_stdout() -> ILogObserver:
    """One JSON event per line on stdout, at SMSGW_LOG_LEVEL (default info)."""
    return _filtered(jsonFileLogObserver(sys.stdout, recordSeparator=""))


def text_stdout() -> ILogObserver:
    """Human-readable events on stdout, at SMSGW_LOG_LEVEL (default info)."""
    return _filtered(textFileLogObserver(sys.stdout))
