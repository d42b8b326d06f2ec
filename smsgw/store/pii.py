"""Phone numbers at rest: AES-256-GCM ciphertexts and a keyed blind index.

Every msisdn the store keeps (a transaction's number, an alert's
destination, a reply's sender, an opt-out, a subscriber's or merchant's
numbers, a webhook's body that names the sender) is written as
``<key id>:<base64url(nonce | ciphertext | tag)>`` under the active
``msisdn-kN.key`` of ``keys_dir`` (the database says which is active:
`smsgw.store.keyring`); the key id says which key opens it, so old
ciphertexts stay readable after a new key is added. Look-ups by number go
through a blind index: HMAC-SHA256 of the E.164 form under a separate key
(``msisdn-index-kN.key``), truncated to 128 bits and written
``<key id>:<hex>``; a look-up asks for the number's index under every live
index key, so rows not yet re-indexed are still found. ``smsgw keys
reencrypt`` re-seals and re-indexes every row under the active keys
(`smsgw.store.rekey`).

The associated data of each ciphertext names what it holds ("msisdn",
"notify", "webhook"), so a ciphertext copied into another column does not
open there. Keys never enter the database; the vault reaches store code
through the connection (`attach` at engine creation, `vault` to find it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Connection, Engine, event
from typing_extensions import override

from smsgw.store.keys import KeyFileError, key_files, newest_key, read_key

__all__ = [
    "MSISDN",
    "NOTIFY",
    "WEBHOOK",
    "PiiError",
    "Vault",
    "attach",
    "key_id",
    "load_vault",
    "vault",
]

MSISDN = b"msisdn"
NOTIFY = b"notify"
WEBHOOK = b"webhook"

_INFO = "smsgw_vault"
_KEY_ID = re.compile(r"k[0-9]{1,9}")
_NONCE = 12


def key_id(value: str | bytes | None) -> str:
    """The key id a stored ciphertext, blind index or keyed hash names, for
    logs, messages and counts: only an id shaped like one (``k<N>``), else
    "?" -- a value that is none of these (a number in clear, garbage) never
    reaches a log or a report this way."""
    if isinstance(value, (bytes, memoryview)):
        kid = bytes(value).partition(b":")[0].decode("ascii", "replace")
    else:
        kid = (value or "").partition(":")[0]
    return kid if _KEY_ID.fullmatch(kid) else "?"


class PiiError(ValueError):
    """A ciphertext that cannot be opened: unknown key id, or altered."""


class Vault:
    """Encryption keys and blind-index keys, by id; the active one of each
    writes, every one reads.

    ``enc`` and ``index``: key id -> 32-byte key, oldest first; ``enc_id``
    and ``index_id``: the ones that write (default: the newest; the keyring
    passes the ids the database marks active).
    """

    __slots__ = ("_aead", "_index", "enc_id", "index_id")

    def __init__(
        self,
        enc: Mapping[str, bytes],
        index: Mapping[str, bytes],
        *,
        enc_id: str | None = None,
        index_id: str | None = None,
    ) -> None:
        if not enc or not index:
            raise KeyFileError("a vault needs an encryption key and an index key")
        if (enc_id is not None and enc_id not in enc) or (
            index_id is not None and index_id not in index
        ):
            raise KeyFileError("the active msisdn key is not among the keys given")
        self._aead = {kid: AESGCM(key) for kid, key in enc.items()}
        self._index = {
            kid: hmac.new(key, digestmod=hashlib.sha256) for kid, key in index.items()
        }
        self.enc_id = enc_id or list(enc)[-1]
        self.index_id = index_id or list(index)[-1]

    # -- ciphertexts ---------------------------------------------------------

    def seal(self, value: str, purpose: bytes = MSISDN) -> str:
        """``value`` encrypted under the active key, with its key id."""
        nonce = os.urandom(_NONCE)
        blob = self._aead[self.enc_id].encrypt(nonce, value.encode(), purpose)
        text = base64.urlsafe_b64encode(nonce + blob).decode().rstrip("=")
        return f"{self.enc_id}:{text}"

    def open(self, sealed: str, purpose: bytes = MSISDN) -> str:
        """The value ``sealed`` holds; PiiError when its key is unknown or it
        was altered (or sealed for another purpose)."""
        kid, sep, body = sealed.partition(":")
        aead = self._aead.get(kid)
        if not sep or aead is None:
            raise PiiError(
                f"ciphertext under unknown key {kid[:8]!r}"
                if sep
                else "not a ciphertext"
            )
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            return aead.decrypt(raw[:_NONCE], raw[_NONCE:], purpose).decode()
        except (InvalidTag, ValueError, binascii.Error) as e:
            raise PiiError(
                f"ciphertext under key {kid} does not open (altered?)"
            ) from e

    def open_opt(self, sealed: str | None, purpose: bytes = MSISDN) -> str | None:
        """`open`, with None (and "") kept as is."""
        return sealed if not sealed else self.open(sealed, purpose)

    def seal_bytes(self, value: bytes, purpose: bytes) -> bytes:
        """``value`` encrypted under the active key: ``<key id>:`` then
        nonce, ciphertext and tag."""
        nonce = os.urandom(_NONCE)
        blob = self._aead[self.enc_id].encrypt(nonce, value, purpose)
        return self.enc_id.encode() + b":" + nonce + blob

    def open_bytes(self, sealed: bytes, purpose: bytes) -> bytes:
        """The bytes `seal_bytes` sealed; PiiError as for `open`."""
        kid, sep, raw = bytes(sealed).partition(b":")
        aead = self._aead.get(kid.decode("ascii", "replace"))
        if not sep or aead is None:
            raise PiiError("ciphertext under an unknown key")
        try:
            return aead.decrypt(raw[:_NONCE], raw[_NONCE:], purpose)
        except (InvalidTag, ValueError) as e:
            raise PiiError("ciphertext does not open (altered?)") from e

    # -- blind index ---------------------------------------------------------

    def index(self, msisdn: str) -> str:
        """The blind index of the E.164 number ``msisdn`` under the active key."""
        return self._index_under(self.index_id, msisdn)

    def index_opt(self, msisdn: str | None) -> str | None:
        """`index`, with None kept as None."""
        return None if msisdn is None else self.index(msisdn)

    def indexes(self, msisdn: str) -> list[str]:
        """The number's index under every live index key (for look-ups),
        newest first."""
        return [self._index_under(kid, msisdn) for kid in reversed(self._index)]

    def _index_under(self, kid: str, msisdn: str) -> str:
        h = self._index[kid].copy()
        h.update(msisdn.encode())
        return f"{kid}:{h.hexdigest()[:32]}"

    @property
    def enc_ids(self) -> list[str]:
        """Every encryption key id, oldest first."""
        return list(self._aead)

    @property
    def index_ids(self) -> list[str]:
        """Every index key id, oldest first."""
        return list(self._index)

    @override
    def __repr__(self) -> str:
        return f"Vault(enc={self.enc_ids}, index={self.index_ids}, keys=****)"

    @override
    def __reduce__(self) -> Any:
        # Keys are never pickled (to the store process or anywhere else).
        raise TypeError("a Vault is not picklable: load it from keys_dir")


def load_vault(keys_dir: Path, *, create: bool = True) -> Vault:
    """Every ``msisdn-kN.key`` and ``msisdn-index-kN.key`` in ``keys_dir``;
    the first of each is generated when there is none (and ``create``).

    Raises KeyFileError for a missing key (``create`` false), a malformed key
    file or one readable by others.
    """
    found = {}
    for name in ("msisdn", "msisdn-index"):
        newest_key(keys_dir, name, create=create)
        found[name] = {kid: read_key(path) for kid, path in key_files(keys_dir, name)}
    return Vault(found["msisdn"], found["msisdn-index"])


def attach(engine: Engine, vault_: Vault) -> None:
    """Make ``vault_`` the one store code finds on this engine's connections."""

    def _put(_dbapi: Any, record: Any) -> None:
        record.info[_INFO] = vault_

    event.listen(engine, "connect", _put)


def vault(conn: Connection) -> Vault:
    """The vault of the engine ``conn`` belongs to (see `attach`)."""
    found = conn.info.get(_INFO)
    if found is None:
        raise KeyFileError(
            "no msisdn keys on this database connection (the engine was made "
            "without keys_dir)"
        )
    return found  # type: ignore[no-any-return]
