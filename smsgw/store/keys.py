"""The gateway's own secrets, kept in ``keys_dir`` (never in the database).

On first start a 32-byte random key is written for the card hash
(``card-hash-k1.key``, hex, mode 0600, in a 0700 folder). The key's id is
stored beside every hash (``k1:<hex>``). The newest key hashes new cards;
a stored card hash cannot be recomputed under a new key (that needs the
PAN), so after ``card-hash-k2.key`` is added, look-ups ask for the card's
hash under every key in the folder, and a retried request is recognised by
its content digest under any of them. Gateway processes sharing one
PostgreSQL database must share this folder's keys (copy it before starting
the second one). Loading refuses a key file that others can read.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from typing_extensions import override

__all__ = [
    "CardHasher",
    "KeyFileError",
    "key_files",
    "load_card_hasher",
    "newest_key",
    "read_key",
]


class KeyFileError(RuntimeError):
    """A key file is missing, unreadable, malformed or too widely readable."""


class CardHasher:
    """Keyed hashes of card numbers and of request content.

    ``card_hash`` is HMAC-SHA256 under the newest card-hash key, written
    with the key id; ``digest`` is the HMAC of any bytes (idempotency
    content, which contains the PAN and so must not be a plain hash), as
    ``b"<key id>:"`` then the 32 bytes.
    ``older``: the keys before the newest (key id -> key, oldest first);
    while there are any, ``rotating`` is true and ``old_card_hashes`` /
    ``old_digests`` give the same values under each of them, for look-ups
    of what was stored before the rotation.
    """

    __slots__ = ("_hmac", "_older", "_prefix", "key_id", "rotating")

    def __init__(
        self, key_id: str, key: bytes, older: Mapping[str, bytes] | None = None
    ) -> None:
        self.key_id = key_id
        self._prefix = key_id.encode() + b":"
        self._hmac = hmac.new(key, digestmod=hashlib.sha256)
        self._older = [
            (kid, hmac.new(k, digestmod=hashlib.sha256))
            for kid, k in reversed(list((older or {}).items()))
        ]
        self.rotating = bool(self._older)

    def old_card_hashes(self, pan: str) -> tuple[str, ...]:
        """``pan``'s hash under each older key, newest first."""
        out = []
        for kid, base in self._older:
            h = base.copy()
            h.update(pan.encode("ascii"))
            out.append(f"{kid}:{h.hexdigest()}")
        return tuple(out)

    def old_digests(self, data: bytes) -> tuple[bytes, ...]:
        """The keyed digest of ``data`` under each older key, newest first
        (each with its key id, as `digest`)."""
        out = []
        for kid, base in self._older:
            h = base.copy()
            h.update(data)
            out.append(kid.encode() + b":" + h.digest())
        return tuple(out)

    def card_hash(self, pan: str) -> str:
        """``<key id>:<hex>`` for ``pan``."""
        h = self._hmac.copy()
        h.update(pan.encode("ascii"))
        return f"{self.key_id}:{h.hexdigest()}"

    def digest(self, data: bytes) -> bytes:
        """The keyed digest of ``data``: ``b"<key id>:"`` then 32 bytes."""
        h = self._hmac.copy()
        h.update(data)
        return self._prefix + h.digest()

    @override
    def __repr__(self) -> str:
        return f"CardHasher(key_id={self.key_id!r}, key=****)"


def _check_private(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path}: readable by group or others (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}"
        )


def key_files(keys_dir: Path, name: str) -> list[tuple[str, Path]]:
    """Every ``<name>-kN.key`` in ``keys_dir`` as (key id, path), oldest first."""
    pattern = re.compile(re.escape(name) + r"-(k([0-9]+))\.key")
    found: list[tuple[int, str, Path]] = []
    if keys_dir.is_dir():
        for path in keys_dir.iterdir():
            m = pattern.fullmatch(path.name)
            if m:
                found.append((int(m.group(2)), m.group(1), path))
    return [(key_id, path) for _, key_id, path in sorted(found)]


def read_key(path: Path) -> bytes:
    """The 32 bytes in key file ``path``; KeyFileError when it is malformed or
    readable by others."""
    _check_private(path)
    text = path.read_text(encoding="ascii", errors="replace").strip()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise KeyFileError(f"{path}: must hold 32 bytes as 64 lowercase hex digits")
    return bytes.fromhex(text)


def newest_key(keys_dir: Path, name: str, *, create: bool = True) -> tuple[str, bytes]:
    """(key id, key) of the newest ``<name>-kN.key`` in ``keys_dir``; when there
    is none, ``<name>-k1.key`` is generated (32 random bytes, mode 0600, in a
    0700 folder), or KeyFileError raised if ``create`` is false."""
    found = key_files(keys_dir, name)
    if not found:
        if not create:
            raise KeyFileError(f"{keys_dir}: no {name} key ({name}-k1.key)")
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = keys_dir / f"{name}-k1.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        found = [("k1", path)]
    key_id, path = found[-1]
    return key_id, read_key(path)


def load_card_hasher(keys_dir: Path, *, create: bool = True) -> CardHasher:
    """The newest card-hash key in ``keys_dir``, generated when there is none.

    Raises KeyFileError when the folder holds no key and ``create`` is false, or a
    key file is malformed or readable by others.
    """
    key_id, key = newest_key(keys_dir, "card-hash", create=create)
    older = {
        kid: read_key(path)
        for kid, path in key_files(keys_dir, "card-hash")
        if kid != key_id
    }
    return CardHasher(key_id, key, older)
