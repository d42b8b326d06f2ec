"""The subscriber and merchant registries, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, String, Text, delete, select

from smsgw.alerts.plan import Merchant
from smsgw.alerts.templates import TemplateError, check_template
from smsgw.store import schema as S
from smsgw.store.accept import subscriber_from_row
from smsgw.store.db import make_engine
from smsgw.store.keys import CardHasher, load_card_hasher
from smsgw.store.pii import MSISDN, NOTIFY, PiiError, Vault
from smsgw.store.registry import (
    ImportCounts,
    add_merchant,
    add_subscriber,
    add_subscribers,
    list_merchants,
    list_subscribers,
    remove_merchant,
    remove_subscriber,
)
from smsgw.store.registry_checks import (
    RegistryError,
    SubscriberRecord,
    could_be_pan,
    merchant_record,
    resolve_issuer,
    subscriber_key,
    subscriber_record,
)
from smsgw.store.registry_csv import (
    CsvImportError,
    export_merchants,
    export_subscribers,
    import_merchants,
    import_subscribers,
)
from tests.store.helpers import test_vault

NOW = 1764417605.0
PAN = "6222021234567894"
PAN2 = "4111111111111111"
ISSUERS = ("default", "bank2")
TEMPLATE = "{{ signature }}: card {{ last4 }} paid {{ amount }}"
PHONE = "must be a possible phone number in international form, like +86 138 0013 8000"
ZONE = "(IANA names like Asia/Shanghai)"


@pytest.fixture
def hasher(tmp_path: Path) -> CardHasher:
    """A card hasher with a key generated in a temporary folder."""
    return load_card_hasher(tmp_path / "keys")


def sub(hasher: CardHasher | None, **fields: Any) -> SubscriberRecord:
    """A checked subscriber: the PAN and a number, with ``fields`` changed."""
    values: dict[str, Any] = {"pan": PAN, "msisdn": "+8613800138000"}
    values.update(fields)
    return subscriber_record(issuers=ISSUERS, hasher=hasher, **values)


def merchant(**fields: Any) -> Merchant:
    """A checked merchant M001, with ``fields`` changed."""
    values: dict[str, Any] = {"merchant_id": "M001", "name": "星巴克(南京西路店)"}
    values.update(fields)
    return merchant_record(issuers=ISSUERS, **values)


def refusal(source: str) -> str:
    """check_template's reason for refusing ``source`` (the renderer owns it)."""
    with pytest.raises(TemplateError) as info:
        check_template(source)
    return str(info.value)


def audit_rows(conn: Connection) -> list[Any]:
    """Every audit row, oldest first."""
    return list(conn.execute(select(S.audit).order_by(S.audit.c.id)))


def every_text_value(conn: Connection) -> list[str]:
    """Every string stored in any text column of any table."""
    values: list[str] = []
    for table in S.metadata.sorted_tables:
        columns = [c for c in table.columns if isinstance(c.type, String | Text)]
        for row in conn.execute(select(*columns)) if columns else ():
            values.extend(v for v in row if isinstance(v, str))
    return values


# -- validation (pure) ------------------------------------------------------


def test_pan_becomes_keyed_hash_and_mask(hasher: CardHasher) -> None:
    """A PAN is replaced by its keyed hash and first6/last4 mask, number normalised."""
    record = sub(hasher, msisdn="+86 138-0013-8000", kinds="refund,purchase")
    assert record.card_hash == hasher.card_hash(PAN)
    assert record.masked_pan == "622202******7894"
    assert record.card_token is None
    assert record.msisdn == "+8613800138000"
    assert record.kinds == "purchase refund"
    assert record.issuer == "default"
    assert PAN not in repr(record)


def test_pan_with_spaces_hashes_like_plain_digits(hasher: CardHasher) -> None:
    """Spaces and hyphens typed inside a PAN do not change its hash."""
    assert sub(hasher, pan="6222 0212-3456 7894").card_hash == hasher.card_hash(PAN)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"msisdn": "12"},
            f"msisdn: {PHONE}, got '12'",
        ),
        (
            {"msisdn": None},
            f"msisdn: {PHONE}",
        ),
        ({"lang": "fr"}, "lang: must be one of zh, en, got 'fr'"),
        ({"min_amount": "1e2"}, "min_amount: must be a decimal like 100.00, got '1e2'"),
        (
            {"min_amount": "1_000"},
            "min_amount: must be a decimal like 100.00, got '1_000'",
        ),
        (
            {"kinds": "purchase,gift"},
            "kinds: unknown kind 'gift' "
            "(kinds: purchase refund reversal preauth withdrawal)",
        ),
        ({"opted_out": "maybe"}, "opted_out: must be true or false, got 'maybe'"),
        (
            {"quiet_start": "22:00"},
            "quiet: give both quiet_start and quiet_end, or neither",
        ),
        (
            {"quiet_start": "24:00", "quiet_end": "07:00"},
            "quiet_start: must be HH:MM (00:00 to 23:59), got '24:00'",
        ),
        (
            {"quiet_start": "07:00", "quiet_end": "07:00"},
            "quiet: start and end must differ",
        ),
        (
            {"timezone": "Mars/Base"},
            "timezone: unknown time zone 'Mars/Base' (IANA names like Asia/Shanghai)",
        ),
        (
            {"timezone": "../etc/passwd"},
            f"timezone: unknown time zone '../etc/passwd' {ZONE}",
        ),
        (
            {"issuer": "nobank"},
            "issuer: no issuer profile 'nobank' (issuers: default, bank2)",
        ),
        ({"pan": "6222021234567895"}, "pan: fails the Luhn check"),
        ({"pan": "62220212345"}, "pan: must be 12 to 19 digits"),
        ({"pan": None}, "card: give exactly one of pan, card_token, card_hash"),
        (
            {"card_token": "tok"},
            "card: give exactly one of pan, card_token, card_hash "
            "(got pan and card_token)",
        ),
        (
            {"pan": None, "card_token": "é"},
            "card_token: must be 1 to 64 printable ASCII characters",
        ),
        (
            {"pan": None, "card_hash": "k1:abc"},
            "card_hash: must be a key id and 64 hex digits, like k1:0a1b...",
        ),
        (
            {"masked_pan": "622202******7894"},
            "masked_pan: only with card_hash (from pan it is computed)",
        ),
    ],
)
def test_each_bad_field_is_named(
    hasher: CardHasher, fields: dict[str, Any], message: str
) -> None:
    """A bad subscriber field raises RegistryError with the field's exact message."""
    with pytest.raises(RegistryError) as info:
        sub(hasher, **fields)
    assert str(info.value) == message


def test_every_bad_field_is_reported_at_once(hasher: CardHasher) -> None:
    """Several bad fields are all named in one error, in field order."""
    with pytest.raises(RegistryError) as info:
        sub(hasher, msisdn="x", lang="fr", timezone="Nowhere")
    assert str(info.value).split("; ") == [
        "msisdn: must be a possible phone number in international form, "
        "like +86 138 0013 8000, got 'x'",
        "lang: must be one of zh, en, got 'fr'",
        "timezone: unknown time zone 'Nowhere' (IANA names like Asia/Shanghai)",
    ]


@pytest.mark.parametrize(
    "fields",
    [
        {"msisdn": PAN},
        {"min_amount": PAN},
        {"lang": PAN},
        {"kinds": PAN},
        {"timezone": PAN},
        {"issuer": PAN},
        {"quiet_start": PAN, "quiet_end": "07:00"},
        {"msisdn": "6222 0212 3456 7894"},
        {"pan": None, "card_token": PAN},
    ],
)
def test_errors_never_quote_a_pan(hasher: CardHasher, fields: dict[str, Any]) -> None:
    """A PAN typed into any field is refused without being quoted."""
    with pytest.raises(RegistryError) as info:
        sub(hasher, **fields)
    text = str(info.value)
    assert "0212" not in text
    assert "7894" not in text


def test_token_that_looks_like_a_pan_is_refused(hasher: CardHasher) -> None:
    """A card_token shaped like a card number is refused and pan is suggested."""
    with pytest.raises(RegistryError) as info:
        sub(hasher, pan=None, card_token=PAN2)
    assert str(info.value) == (
        "card_token: looks like a card number: give it as pan, so that only its "
        "keyed hash and masked form are stored"
    )


def test_could_be_pan() -> None:
    """Luhn-valid runs of 12-19 digits (or longer runs) count as possible PANs."""
    assert could_be_pan(PAN)
    assert could_be_pan(f"x {PAN[:4]} {PAN[4:8]}-{PAN[8:12]}.{PAN[12:]} y")
    assert could_be_pan("1" * 25)
    assert not could_be_pan("6222021234567895")
    assert not could_be_pan("+8613800138000 tok-1")


def test_pan_needs_a_hasher() -> None:
    """Without a card-hash key a PAN cannot be registered."""
    with pytest.raises(RegistryError) as info:
        sub(None)
    assert str(info.value) == "pan: no card-hash key to hash it with"


def test_resolve_issuer_defaults_to_first() -> None:
    """No issuer means the first configured profile; an unknown one is refused."""
    assert resolve_issuer(None, ISSUERS) == "default"
    assert resolve_issuer("bank2", ISSUERS) == "bank2"
    with pytest.raises(RegistryError, match="issuer: no issuer profile 'x'"):
        resolve_issuer("x", ISSUERS)


def test_merchant_is_normalised() -> None:
    """Notify numbers are split, normalised to E.164 and deduplicated."""
    m = merchant(
        notify=["+86 138 0013 8000", "+8613800138001,+8613800138000"],
        lang="en",
        templates={"en": TEMPLATE, "zh": ""},
        issuer="bank2",
    )
    assert m == Merchant(
        issuer="bank2",
        merchant_id="M001",
        name="星巴克(南京西路店)",
        notify=("+8613800138000", "+8613800138001"),
        lang="en",
        templates={"en": TEMPLATE},
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"merchant_id": ""},
            "merchant_id: must be 1 to 32 printable ASCII characters",
        ),
        (
            {"merchant_id": "M" * 33},
            "merchant_id: must be 1 to 32 printable ASCII characters",
        ),
        (
            {"name": "x" * 101},
            "name: must be 1 to 100 characters without control characters",
        ),
        (
            {"name": "a\nb"},
            "name: must be 1 to 100 characters without control characters",
        ),
        (
            {"notify": "+8613800138000 12"},
            f"notify: {PHONE}, got '12'",
        ),
        ({"lang": "de"}, "lang: must be one of zh, en, got 'de'"),
        (
            {"templates": {"fr": TEMPLATE}},
            "templates: unknown language 'fr' (languages: zh, en)",
        ),
        (
            {"templates": {"en": "{{ amount }}"}},
            "template_en: " + refusal("{{ amount }}"),
        ),
        (
            {"templates": {"zh": "{{ amount }}{{ last4 }}{{ x.y }}"}},
            "template_zh: " + refusal("{{ amount }}{{ last4 }}{{ x.y }}"),
        ),
        (
            {"templates": {"en": "{{ amount }} {% for"}},
            "template_en: " + refusal("{{ amount }} {% for"),
        ),
    ],
)
def test_each_bad_merchant_field_is_named(fields: dict[str, Any], message: str) -> None:
    """A bad merchant field raises RegistryError with the field's exact message."""
    with pytest.raises(RegistryError) as info:
        merchant(**fields)
    assert str(info.value) == message


# -- subscribers in the database ---------------------------------------------


def test_add_then_update_subscriber(engine: Engine, hasher: CardHasher) -> None:
    """The first add inserts, the second replaces the record; both are audited."""
    with engine.begin() as conn:
        assert add_subscriber(conn, sub(hasher, lang="zh"), now=NOW) == "added"
    with engine.begin() as conn:
        again = sub(hasher, msisdn="+8613900139000", opted_out=True)
        assert add_subscriber(conn, again, now=NOW + 1) == "updated"
    with engine.connect() as conn:
        rows = list(conn.execute(select(S.subscribers)))
        audit = audit_rows(conn)
    assert len(rows) == 1
    row = rows[0]
    v = test_vault()
    assert (v.open(row.msisdn), row.lang, row.opted_out) == (
        "+8613900139000",
        None,
        True,
    )
    assert row.msisdn_index == v.index("+8613900139000")
    assert (row.created_at, row.updated_at) == (NOW, NOW + 1)
    planner = subscriber_from_row(row, v)
    assert planner.opted_out is True
    assert planner.msisdn == "+8613900139000"
    assert [(a.action, a.actor, a.issuer, a.subject, a.at) for a in audit] == [
        ("subscriber.add", "cli", "default", "622202******7894", NOW),
        ("subscriber.update", "cli", "default", "622202******7894", NOW + 1),
    ]
    assert '"msisdn":"+86138****8000"' in audit[0].detail
    assert '"msisdn":["+86138****8000","+86139****9000"]' in audit[1].detail
    assert '"opted_out":[false,true]' in audit[1].detail


def test_by_pan_after_a_card_hash_key_rotation(
    engine: Engine, hasher: CardHasher, tmp_path: Path
) -> None:
    """With card-hash-k2.key added, a card enrolled under k1 is found by its
    PAN: adding it again updates that row and moves it to k2 (no second
    subscriber), and removing it by PAN removes it."""
    with engine.begin() as conn:
        assert add_subscriber(conn, sub(hasher), now=NOW) == "added"
    (tmp_path / "keys" / "card-hash-k2.key").write_text("22" * 32 + "\n")
    (tmp_path / "keys" / "card-hash-k2.key").chmod(0o600)
    rotated = load_card_hasher(tmp_path / "keys")
    with engine.begin() as conn:
        again = sub(rotated, msisdn="+8613900139000")
        assert add_subscriber(conn, again, now=NOW + 1) == "updated"
    with engine.connect() as conn:
        [row] = list(conn.execute(select(S.subscribers)))
    assert row.card_hash == rotated.card_hash(PAN)
    assert row.card_hash.startswith("k2:")
    key = subscriber_key(issuers=ISSUERS, hasher=rotated, pan=PAN)
    with engine.begin() as conn:
        conn.execute(
            S.subscribers.update().values(card_hash=hasher.card_hash(PAN))
        )  # as if never re-enrolled: still under k1
        assert remove_subscriber(conn, key, now=NOW + 2) is True
    with engine.connect() as conn:
        assert list(conn.execute(select(S.subscribers))) == []


def test_same_card_under_two_issuers_is_two_subscribers(
    engine: Engine, hasher: CardHasher
) -> None:
    """The key is (issuer, card): another issuer's record is separate."""
    with engine.begin() as conn:
        assert add_subscriber(conn, sub(hasher), now=NOW) == "added"
        assert add_subscriber(conn, sub(hasher, issuer="bank2"), now=NOW) == "added"
        assert len(list_subscribers(conn)) == 2
        assert [r.issuer for r in list_subscribers(conn, issuer="bank2")] == ["bank2"]


def test_list_by_number_and_issuer(engine: Engine, hasher: CardHasher) -> None:
    """list filters by issuer and by a number given in any possible form."""
    token = sub(hasher, pan=None, card_token="tok-1", msisdn="+8613900139000")
    with engine.begin() as conn:
        add_subscriber(
            conn, sub(hasher, quiet_start="22:00", quiet_end="07:00"), now=NOW
        )
        add_subscriber(conn, token, now=NOW)
        found = list_subscribers(conn, msisdn="+86 139 0013 9000")
        assert found == [token]
        assert list_subscribers(conn, issuer="bank2") == []
        with pytest.raises(RegistryError, match=r"^msisdn: "):
            list_subscribers(conn, msisdn="123")
    assert found[0].card == "token tok-1"


def test_remove_subscriber_by_pan_and_token(engine: Engine, hasher: CardHasher) -> None:
    """remove deletes by PAN (hashed) or token, answers False when absent, audits."""
    with engine.begin() as conn:
        add_subscriber(conn, sub(hasher), now=NOW)
        add_subscriber(conn, sub(hasher, pan=None, card_token="tok-1"), now=NOW)
        by_pan = subscriber_key(issuers=ISSUERS, hasher=hasher, pan=PAN)
        by_token = subscriber_key(issuers=ISSUERS, hasher=None, card_token="tok-1")
        assert remove_subscriber(conn, by_pan, now=NOW + 5) is True
        assert remove_subscriber(conn, by_pan, now=NOW + 5) is False
        other = subscriber_key(
            issuers=ISSUERS, hasher=None, card_token="tok-1", issuer="bank2"
        )
        assert remove_subscriber(conn, other, now=NOW + 5) is False
        assert remove_subscriber(conn, by_token, now=NOW + 6) is True
        assert list_subscribers(conn) == []
        audit = audit_rows(conn)
    assert [(a.action, a.subject) for a in audit[2:]] == [
        ("subscriber.remove", "622202******7894"),
        ("subscriber.remove", "token tok-1"),
    ]


def test_update_by_hash_keeps_stored_mask(engine: Engine, hasher: CardHasher) -> None:
    """Re-adding a card by its hash alone keeps the masked PAN stored before."""
    with engine.begin() as conn:
        add_subscriber(conn, sub(hasher), now=NOW)
        by_hash = sub(hasher, pan=None, card_hash=hasher.card_hash(PAN), lang="en")
        assert add_subscriber(conn, by_hash, now=NOW) == "updated"
        (record,) = list_subscribers(conn)
    assert record.masked_pan == "622202******7894"
    assert record.lang == "en"


def test_pan_is_never_stored(engine: Engine, hasher: CardHasher) -> None:
    """After adds, an import and removals, no text column anywhere holds the PAN."""
    csv_text = f"pan,msisdn\n{PAN2},+8613800138001\n"
    with engine.begin() as conn:
        add_subscriber(conn, sub(hasher), now=NOW)
        add_subscriber(conn, sub(hasher, opted_out=True), now=NOW)
        import_subscribers(
            conn, io.StringIO(csv_text), issuers=ISSUERS, hasher=hasher, now=NOW
        )
        key = subscriber_key(issuers=ISSUERS, hasher=hasher, pan=PAN2)
        remove_subscriber(conn, key, now=NOW)
        values = every_text_value(conn)
    assert len(values) > 20
    for value in values:
        assert PAN not in value
        assert PAN2 not in value


def test_many_subscribers_in_one_batch(engine: Engine, hasher: CardHasher) -> None:
    """A batch larger than one look-up chunk adds, then updates, every record."""
    records = [
        sub(hasher, pan=None, card_token=f"tok-{n}", msisdn=f"+86139{n:08d}")
        for n in range(1200)
    ]
    with engine.begin() as conn:
        assert add_subscribers(conn, records, now=NOW) == ImportCounts(1200, 0)
        assert add_subscribers(conn, records, now=NOW) == ImportCounts(0, 1200)
        assert len(list_subscribers(conn)) == 1200
        assert len(audit_rows(conn)) == 2400


# -- merchants in the database -------------------------------------------------


def test_add_update_list_remove_merchant(engine: Engine) -> None:
    """Merchants are upserted by (issuer, id), listed, removed, and audited."""
    with engine.begin() as conn:
        assert add_merchant(conn, merchant(notify="+8613800138000"), now=NOW) == "added"
        updated = merchant(name="Starbucks", templates={"en": TEMPLATE}, lang="en")
        assert add_merchant(conn, updated, now=NOW + 1) == "updated"
        assert add_merchant(conn, merchant(issuer="bank2"), now=NOW) == "added"
        assert list_merchants(conn, issuer="default") == [updated]
        assert len(list_merchants(conn)) == 2
        assert remove_merchant(conn, issuer="default", merchant_id="M001", now=NOW + 2)
        assert not remove_merchant(conn, issuer="default", merchant_id="M001", now=NOW)
        assert [m.issuer for m in list_merchants(conn)] == ["bank2"]
        row = conn.execute(select(S.merchants)).one()
        audit = audit_rows(conn)
    assert (row.notify, row.templates) == ("", "{}")
    assert [(a.action, a.subject, a.issuer) for a in audit] == [
        ("merchant.add", "M001", "default"),
        ("merchant.update", "M001", "default"),
        ("merchant.add", "M001", "bank2"),
        ("merchant.remove", "M001", "default"),
    ]
    assert '"notify":"+86138****8000"' in audit[0].detail
    assert '"name":["星巴克(南京西路店)","Starbucks"]' in audit[1].detail
    assert '"notify":["+86138****8000",""]' in audit[1].detail
    assert '"notify":""' in audit[3].detail


def test_merchant_notify_is_one_ciphertext(engine: Engine) -> None:
    """The notify numbers are sealed together, for the notify purpose only,
    and listed in clear."""
    numbers = ("+8613800138000", "+8613800138001")
    with engine.begin() as conn:
        add_merchant(conn, merchant(notify=" ".join(numbers)), now=NOW)
        stored = conn.execute(select(S.merchants.c.notify)).scalar_one()
        (listed,) = list_merchants(conn)
    v = test_vault()
    assert v.open(stored, NOTIFY) == " ".join(numbers)
    with pytest.raises(PiiError):
        v.open(stored, MSISDN)
    assert listed.notify == numbers


# -- numbers at rest -------------------------------------------------------------


def every_value(conn: Connection, *tables: Any) -> list[str]:
    """Every value of every column of ``tables``, as text."""
    return [
        str(value)
        for table in tables
        for row in conn.execute(select(table))
        for value in row
        if value is not None
    ]


def test_no_clear_number_at_rest(engine: Engine, hasher: CardHasher) -> None:
    """After adds, updates, imports and removals of subscribers and merchants,
    no column of subscribers, merchants or audit holds a clear number; the
    audit rows name them masked."""
    numbers = [f"+86138001380{n:02d}" for n in range(8)]
    subscribers_csv = f"card_token,msisdn\ntok-3,{numbers[3]}\ntok-4,{numbers[4]}\n"
    merchants_csv = (
        f'merchant_id,name,notify\nM2,Shop,"{numbers[5]} {numbers[6]}"\nM3,Bar,\n'
    )
    with engine.begin() as conn:
        add_subscriber(conn, sub(hasher, msisdn=numbers[0]), now=NOW)
        add_subscriber(conn, sub(hasher, msisdn=numbers[1]), now=NOW)
        add_subscriber(conn, sub(hasher, pan=PAN2, msisdn=numbers[2]), now=NOW)
        import_subscribers(
            conn, io.StringIO(subscribers_csv), issuers=ISSUERS, hasher=None, now=NOW
        )
        key = subscriber_key(issuers=ISSUERS, hasher=hasher, pan=PAN2)
        remove_subscriber(conn, key, now=NOW)
        add_merchant(conn, merchant(notify=numbers[:2]), now=NOW)
        add_merchant(conn, merchant(notify=numbers[7]), now=NOW)
        import_merchants(conn, io.StringIO(merchants_csv), issuers=ISSUERS, now=NOW)
        remove_merchant(conn, issuer="default", merchant_id="M2", now=NOW)
        values = every_value(conn, S.subscribers, S.merchants, S.audit)
        indexes = set(conn.execute(select(S.subscribers.c.msisdn_index)).scalars())
        details = " ".join(conn.execute(select(S.audit.c.detail)).scalars())
        assert [s.msisdn for s in list_subscribers(conn)] == [
            numbers[1],
            numbers[3],
            numbers[4],
        ]
        assert [m.notify for m in list_merchants(conn)] == [(numbers[7],), ()]
    assert len(values) > 100
    for value in values:
        for number in numbers:
            assert number[-9:] not in value
    v = test_vault()
    assert indexes == {v.index(numbers[n]) for n in (1, 3, 4)}
    for n in range(8):
        assert f"+86138****80{n:02d}" in details


def test_list_by_number_under_an_older_index_key(
    engine: Engine, db_url: str, hasher: CardHasher
) -> None:
    """During an index-key rotation a subscriber indexed under the older key
    is still found by number; an update re-indexes it under the newest key."""
    enc, k1, k2 = bytes(range(32)), bytes(range(32, 64)), bytes(range(64, 96))
    before = make_engine(db_url, vault=Vault({"k1": enc}, {"k1": k1}))
    during = make_engine(db_url, vault=Vault({"k1": enc}, {"k1": k1, "k2": k2}))
    try:
        with before.begin() as conn:
            add_subscriber(conn, sub(hasher), now=NOW)
            other = sub(hasher, pan=PAN2, msisdn="+8613900139000")
            add_subscriber(conn, other, now=NOW)
        with during.begin() as conn:
            assert list_subscribers(conn, msisdn="+86 138 0013 8000") == [sub(hasher)]
            add_subscriber(conn, sub(hasher, lang="en"), now=NOW + 1)
            assert list_subscribers(conn, msisdn="+8613800138000") == [
                sub(hasher, lang="en")
            ]
            assert list_subscribers(conn, msisdn="+8613900139000") == [other]
            ix = conn.execute(
                select(S.subscribers.c.msisdn_index).order_by(S.subscribers.c.id)
            ).scalars()
            assert [i.partition(":")[0] for i in ix] == ["k2", "k1"]
    finally:
        before.dispose()
        during.dispose()


# -- CSV ------------------------------------------------------------------------


def _fill(conn: Connection, hasher: CardHasher) -> list[SubscriberRecord]:
    records = [
        sub(hasher, kinds="purchase", min_amount="100.00", lang="zh"),
        sub(
            hasher,
            pan=PAN2,
            issuer="bank2",
            quiet_start="22:00",
            quiet_end="07:30",
            timezone="Asia/Shanghai",
            opted_out=True,
        ),
        sub(hasher, pan=None, card_token='tok,"1"', msisdn="+12025550123"),
        sub(hasher, pan=None, card_hash="k1:" + "ab" * 32, msisdn="+442071838750"),
    ]
    add_subscribers(conn, records, now=NOW)
    return list_subscribers(conn)


def test_subscriber_csv_round_trip(engine: Engine, hasher: CardHasher) -> None:
    """An export holds no PAN and, imported into an empty registry, restores it."""
    with engine.begin() as conn:
        before = _fill(conn, hasher)
        out = io.StringIO()
        assert export_subscribers(conn, out) == 4
        conn.execute(delete(S.subscribers))
    text = out.getvalue()
    assert PAN not in text
    assert PAN2 not in text
    assert text.splitlines()[0] == (
        "issuer,card_token,masked_pan,card_hash,msisdn,lang,min_amount,kinds,"
        "opted_out,quiet_start,quiet_end,timezone"
    )
    # Numbers are exported in clear: the export is the operator's copy.
    assert (
        f"default,,622202******7894,{hasher.card_hash(PAN)},+8613800138000,zh," in text
    )
    with engine.begin() as conn:
        counts = import_subscribers(
            conn, io.StringIO(text), issuers=ISSUERS, hasher=None, now=NOW
        )
        assert counts == ImportCounts(4, 0)
        assert list_subscribers(conn) == before
        again = import_subscribers(
            conn, io.StringIO(text), issuers=ISSUERS, hasher=None, now=NOW
        )
        assert again == ImportCounts(0, 4)
        assert list_subscribers(conn) == before


def test_import_with_a_bad_row_writes_nothing(
    engine: Engine, hasher: CardHasher
) -> None:
    """One bad row refuses the whole file; every bad row is named by its line."""
    text = (
        "issuer,pan,card_token,msisdn,kinds,opted_out\n"
        f",{PAN},,+8613800138000,,\n"
        ',,"multi\nline",+8613800138001,,\n'  # a quoted field over two lines
        ",,tok-2,+861,,\n"
        f"bank2,{PAN2},,+8613800138002,gift,yes\n"
        ",,tok-4,+8613800138004,,\n"
        f",{PAN},,+8613800138005,,\n"
        ",,tok-6\n"
    )
    with engine.begin() as conn:
        with pytest.raises(CsvImportError) as info:
            import_subscribers(
                conn, io.StringIO(text), issuers=ISSUERS, hasher=hasher, now=NOW
            )
        assert list_subscribers(conn) == []
        assert audit_rows(conn) == []
    assert info.value.errors == (
        "line 3: card_token: must be 1 to 64 printable ASCII characters",
        "line 5: msisdn: must be a possible phone number in international form, "
        "like +86 138 0013 8000, got '+861'",
        "line 6: kinds: unknown kind 'gift' (kinds: purchase refund reversal "
        "preauth withdrawal)",
        "line 8: card: the same card as line 2",
        "line 9: 3 fields, the header has 6",
    )
    assert all(PAN not in e and PAN2 not in e for e in info.value.errors)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "line 1: the header row is missing"),
        (
            "pan,phone\n",
            "line 1: the header must name each column at most once, "
            "among pan,issuer,card_token,masked_pan,card_hash,msisdn,lang,min_amount,"
            "kinds,opted_out,quiet_start,quiet_end,timezone, including msisdn",
        ),
        (
            "pan,msisdn,pan\n",
            "line 1: the header must name each column at most once, "
            "among pan,issuer,card_token,masked_pan,card_hash,msisdn,lang,min_amount,"
            "kinds,opted_out,quiet_start,quiet_end,timezone, including msisdn",
        ),
        (
            'card_token,msisdn\n"tok,+86\n',
            "line 2: not valid CSV (unexpected end of data)",
        ),
    ],
)
def test_import_refuses_a_bad_header_or_csv(
    engine: Engine, text: str, error: str
) -> None:
    """A missing, unknown or repeated header column, or broken quoting, is refused."""
    with engine.begin() as conn, pytest.raises(CsvImportError) as info:
        import_subscribers(
            conn, io.StringIO(text), issuers=ISSUERS, hasher=None, now=NOW
        )
    assert info.value.errors == (error,)


def test_merchant_csv_round_trip(engine: Engine) -> None:
    """Merchants export to CSV and import back unchanged, templates included."""
    merchants = [
        merchant(
            notify="+8613800138000 +8613800138001",
            lang="zh",
            templates={"zh": "【{{ signature }}】{{ last4 }}\n{{ amount }}"},
        ),
        merchant(
            merchant_id="M,2",
            name='Café "A"',
            issuer="bank2",
            templates={"en": TEMPLATE},
        ),
    ]
    with engine.begin() as conn:
        for m in merchants:
            add_merchant(conn, m, now=NOW)
        before = list_merchants(conn)
        out = io.StringIO()
        assert export_merchants(conn, out) == 2
        conn.execute(delete(S.merchants))
        counts = import_merchants(
            conn, io.StringIO(out.getvalue()), issuers=ISSUERS, now=NOW
        )
        assert counts == ImportCounts(2, 0)
        assert list_merchants(conn) == before
    assert out.getvalue().splitlines()[0] == (
        "issuer,merchant_id,name,notify,lang,template_zh,template_en"
    )


def test_merchant_import_checks_templates(engine: Engine) -> None:
    """A row with an unsafe template fails the import, naming line and field."""
    unsafe = "{{ amount }}{{ last4 }}{{ ''.__class__ }}"
    text = (
        "merchant_id,name,template_en\n"
        f"M1,Shop,{TEMPLATE}\n"
        f'M2,Shop,"{unsafe}"\n'
        "M1,Again,\n"
    )
    with engine.begin() as conn:
        with pytest.raises(CsvImportError) as info:
            import_merchants(conn, io.StringIO(text), issuers=ISSUERS, now=NOW)
        assert list_merchants(conn) == []
    assert info.value.errors == (
        "line 3: template_en: " + refusal(unsafe),
        "line 4: merchant_id: the same merchant as line 2",
    )
