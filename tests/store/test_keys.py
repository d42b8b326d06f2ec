"""Key files in keys_dir: the card-hash and audit keys share one loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from smsgw.store.chain import audit_public_keys, load_audit_signer
from smsgw.store.keys import KeyFileError, key_files, load_card_hasher, newest_key


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


def test_newest_key_is_by_number_not_by_name(tmp_path: Path) -> None:
    """k10 is newer than k2 and k9; files of the other kind are not counted."""
    tmp_path.chmod(0o700)
    for n, byte in ((2, "02"), (10, "0a"), (9, "09")):
        _write(tmp_path / f"card-hash-k{n}.key", byte * 32 + "\n")
    _write(tmp_path / "audit-k11.key", "0b" * 32)
    assert [key_id for key_id, _ in key_files(tmp_path, "card-hash")] == [
        "k2",
        "k9",
        "k10",
    ]
    assert newest_key(tmp_path, "card-hash") == ("k10", bytes([10]) * 32)
    assert load_card_hasher(tmp_path).key_id == "k10"
    assert load_audit_signer(tmp_path).key_id == "k11"


def test_missing_malformed_and_loose_keys(tmp_path: Path) -> None:
    """No key and no creation, a key that is not 64 hex digits, or one others can
    read: each a KeyFileError naming the file; nothing is generated over them."""
    keys = tmp_path / "keys"
    with pytest.raises(KeyFileError, match=r"no card-hash key \(card-hash-k1\.key\)"):
        load_card_hasher(keys, create=False)
    assert not keys.exists()
    keys.mkdir(mode=0o700)
    _write(keys / "audit-k1.key", "not hex")
    with pytest.raises(KeyFileError, match=r"audit-k1\.key: must hold 32 bytes"):
        load_audit_signer(keys)
    with pytest.raises(KeyFileError, match=r"audit-k1\.key: must hold 32 bytes"):
        audit_public_keys(keys)
    _write(keys / "audit-k1.key", "ab" * 32)
    (keys / "audit-k1.key").chmod(0o640)
    with pytest.raises(KeyFileError, match="readable by group or others"):
        load_audit_signer(keys)
    assert [p.name for p in keys.iterdir()] == ["audit-k1.key"]


def test_generated_audit_key_matches_the_public_keys_listed(tmp_path: Path) -> None:
    """First use writes audit-k1.key (0600 in a 0700 folder); verify's public-key
    list holds exactly that key's public half."""
    signer = load_audit_signer(tmp_path / "keys")
    path = tmp_path / "keys" / "audit-k1.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    assert audit_public_keys(tmp_path / "keys") == {"k1": signer.public_hex()}
    assert load_audit_signer(tmp_path / "keys").public_hex() == signer.public_hex()
