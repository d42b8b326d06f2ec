"""Realistic intake v1 transaction bodies for load runs.

`make_txn_body` makes the ``i``-th body of a run: mostly purchases at
`MERCHANTS` (Chinese and English names), Luhn-valid test PANs and phones from
`DEFAULT_MSISDNS` so subscribers repeat.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from smsgw.pos import cards

__all__ = [
    "DEFAULT_MSISDNS",
    "MERCHANTS",
    "make_txn_body",
]

#: (merchant_id, merchant_name): card-present merchants, Chinese and English.
MERCHANTS: tuple[tuple[str, str], ...] = (
    ("M001", "星巴克(南京西路店)"),
    ("M002", "STARBUCKS SHANGHAI"),
    ("M003", "全家便利店(人民广场店)"),
    ("M004", "Apple Store Pudong"),
    ("M005", "中国石化加油站(沪闵路)"),
    ("M006", "McDonald's Xujiahui"),
    ("M007", "盒马鲜生(静安寺店)"),
    ("M008", "IKEA Beijing Siyuanqiao"),
    ("M009", "海底捞火锅(王府井店)"),
    ("M010", "DIDI CHUXING"),
)
_ATMS: tuple[tuple[str, str], ...] = (
    ("ATM021", "工商银行ATM(陆家嘴支行)"),
    ("ATM107", "ICBC ATM NANJING RD"),
)
_KINDS = ("purchase", "refund", "reversal", "preauth", "withdrawal")
_KIND_WEIGHTS = (85, 5, 3, 4, 3)
_CST = timezone(timedelta(hours=8))
_TXN_ID_CHARS = re.compile(r"[^A-Za-z0-9._:-]")

#: Subscribers' phones: a fixed pool so the same subscribers get many alerts.
DEFAULT_MSISDNS: tuple[str, ...] = tuple(
    cards.test_msisdn(random.Random(86 * 1000 + n)) for n in range(200)
)


@functools.lru_cache(maxsize=4)
def _local_time(second: int) -> str:
    """RFC 3339 at +08:00 for a Unix second (cached: a run asks for the same
    second thousands of times)."""
    return datetime.fromtimestamp(second, tz=_CST).isoformat(timespec="seconds")


def _yuan(cents: int) -> str:
    """Minor units as a CNY amount string with 2 decimals ("128.50")."""
    return f"{cents // 100}.{cents % 100:02d}"


def _purchase_cents(rng: random.Random) -> int:
    """Card-present spending: mostly small, a tail of large tickets."""
    band = rng.random()
    if band < 0.6:
        return rng.randint(500, 10_000)  # 5 to 100 yuan
    if band < 0.9:
        return rng.randint(10_000, 100_000)
    if band < 0.99:
        return rng.randint(100_000, 1_000_000)
    return rng.randint(1_000_000, 5_000_000)


def make_txn_body(
    i: int,
    rng: random.Random,
    *,
    terminal: str,
    now: float,
    run_id: str = "load",
    msisdns: Sequence[str] = DEFAULT_MSISDNS,
) -> dict[str, Any]:
    """The ``i``-th transaction of a load run, as intake v1's ``txn`` body.

    Mostly purchases (some refunds, reversals, pre-authorisations, ATM
    withdrawals); CNY amounts with 2 decimals; merchants from `MERCHANTS`; a
    Luhn-valid test PAN; a phone from ``msisdns`` so subscribers repeat;
    ``time`` as RFC 3339 at +08:00 and ``ts`` = ``now``. ``txn_id`` is
    ``<terminal>-<run_id>-<i>`` (unique per run; a refund or reversal points
    ``orig_txn_id`` at an earlier one). Returns a new dict.
    """
    prefix = _TXN_ID_CHARS.sub("", f"{terminal}-{run_id}")[:48]
    kind = rng.choices(_KINDS, _KIND_WEIGHTS)[0]
    if i == 0 and kind in ("refund", "reversal"):
        kind = "purchase"  # nothing earlier to refer to
    if kind == "withdrawal":
        merchant_id, merchant_name = rng.choice(_ATMS)
        cents = rng.randint(1, 30) * 10_000
    else:
        merchant_id, merchant_name = rng.choice(MERCHANTS)
        cents = _purchase_cents(rng)
        if kind == "preauth":
            cents = rng.randint(50_000, 500_000)
    second = int(now)
    body: dict[str, Any] = {
        "type": "txn",
        "txn_id": f"{prefix}-{i:06d}",
        "ts": second,
        "kind": kind,
        "amount": _yuan(cents),
        "currency": "CNY",
        "pan": cards.test_pan(rng),
        "merchant_id": merchant_id,
        "merchant_name": merchant_name,
        "time": _local_time(second),
        "msisdn": rng.choice(msisdns),
        "rrn": f"{rng.randrange(10**12):012d}",
        "stan": f"{rng.randrange(10**6):06d}",
    }
    if kind in ("refund", "reversal"):
        body["orig_txn_id"] = f"{prefix}-{rng.randrange(i):06d}"
    if rng.random() < 0.02:
        body["result"] = "declined"
    else:
        body["auth_code"] = "".join(
            rng.choices("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ", k=6)
        )
    if rng.random() < 0.5:
        body["balance"] = _yuan(rng.randint(0, 5_000_000))
    if rng.random() < 0.1:
        body["lang"] = "en"
    return body
