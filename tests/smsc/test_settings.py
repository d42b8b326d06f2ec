"""SmscSettings validation and the command-line options that build it."""

from __future__ import annotations

import argparse

import pytest

from smsgw.smsc.settings import SmscSettings, add_smsc_arguments, settings_from_args


def parse(*argv: str) -> SmscSettings:
    parser = argparse.ArgumentParser()
    add_smsc_arguments(parser)
    return settings_from_args(parser.parse_args(argv))


def test_defaults() -> None:
    """The defaults are the brief's: localhost 2775, smsgw/secret, decimal ids."""
    s = SmscSettings()
    assert s.listen == "tcp:2775:interface=127.0.0.1"
    assert s.accounts == (("smsgw", "secret"),)
    assert (s.id_format, s.receipt_delay, s.receipt_state) == (
        "decimal",
        0.5,
        "DELIVRD",
    )
    assert s.receipts
    assert s.receipt_tlvs
    assert (s.throttle_fraction, s.max_tps, s.seed) == (0.0, None, None)


def test_every_problem_is_named() -> None:
    """Invalid values raise one ValueError that names each bad field."""
    with pytest.raises(ValueError, match="id_format") as info:
        SmscSettings(
            id_format="octal",  # type: ignore[arg-type]
            receipt_state="GONE",
            throttle_fraction=1.5,
            max_tps=0,
            receipt_delay=-1,
            accounts=(("a-very-long-system-id", "toolongpassword"),),
        )
    message = str(info.value)
    for name in (
        "receipt_state",
        "throttle_fraction",
        "max_tps",
        "receipt_delay",
        "accounts[0].system_id",
        "accounts[0].password",
    ):
        assert name in message


def test_repr_masks_passwords() -> None:
    """The settings' repr shows system ids but never passwords."""
    text = repr(SmscSettings(accounts=(("bank", "hunter2"),)))
    assert "bank" in text
    assert "hunter2" not in text


def test_arguments_default_to_settings_defaults() -> None:
    """With no options the parsed settings equal SmscSettings()."""
    assert parse() == SmscSettings()


def test_arguments_map_to_settings() -> None:
    """Every option lands in its field."""
    s = parse(
        "--listen", "tcp:0", "--control", "tcp:8775", "--system-id", "bank",
        "--password", "pw", "--id-format", "hex", "--receipt-delay", "2",
        "--receipt-state", "EXPIRED", "--throttle-fraction", "0.1",
        "--max-tps", "50", "--no-receipt-tlvs", "--seed", "7", "--log-received",
    )  # fmt: skip
    assert s == SmscSettings(
        listen="tcp:0",
        control="tcp:8775",
        accounts=(("bank", "pw"),),
        id_format="hex",
        receipt_delay=2.0,
        receipt_state="EXPIRED",
        throttle_fraction=0.1,
        max_tps=50.0,
        receipt_tlvs=False,
        seed=7,
        log_received=True,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ("--throttle-fraction", "2"),
        ("--max-tps", "0"),
        ("--receipt-delay", "-1"),
        ("--receipt-state", "GONE"),
        ("--id-format", "octal"),
    ],
)
def test_bad_arguments_rejected_by_parser(argv: tuple[str, str]) -> None:
    """A bad option value is an argparse error (exit status 2)."""
    with pytest.raises(SystemExit) as info:
        parse(*argv)
    assert info.value.code == 2
