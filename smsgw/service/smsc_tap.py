"""``twistd smsgw-smsc [options]``: the built-in SMSC simulator on its own."""

from __future__ import annotations

import argparse
from typing import NoReturn

from twisted.application.service import IService
from twisted.internet import reactor
from twisted.python import usage
from typing_extensions import override

from smsgw.smsc.service import make_smsc_service
from smsgw.smsc.settings import SmscSettings, add_smsc_arguments, settings_from_args


class _Parser(argparse.ArgumentParser):
    @override
    def error(self, message: str) -> NoReturn:
        raise usage.UsageError(message)


class Options(usage.Options):
    """Takes the same options as ``smsgw smsc`` (see ``--help``)."""

    @override
    def parseOptions(self, options: list[str] | None = None) -> None:
        """Parse with the simulator's argparse definition."""
        parser = _Parser(prog="twistd smsgw-smsc")
        add_smsc_arguments(parser)
        if options is not None and ("--help" in options or "-h" in options):
            raise usage.UsageError(parser.format_help())
        try:
            self.settings: SmscSettings = settings_from_args(
                parser.parse_args(options or [])
            )
        except ValueError as e:
            raise usage.UsageError(str(e)) from None

    @override
    def __str__(self) -> str:
        parser = argparse.ArgumentParser(prog="twistd smsgw-smsc")
        add_smsc_arguments(parser)
        return parser.format_help()


def makeService(options: Options) -> IService:
    """The simulator's SMPP listener (and HTTP control, when configured)."""
    return make_smsc_service(options.settings, reactor)
