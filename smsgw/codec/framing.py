"""SMPP framing: cut a byte stream into whole PDUs.

SMPP 3.4 §3.2: command_length counts its own four octets, so Twisted's
IntNStringReceiver does not fit. This is the single-buffer loop of
``twisted/protocols/basic.py`` with SMPP's length rule.
"""

from __future__ import annotations

import struct

from smsgw.codec.constants import HEADER_LENGTH

_LEN = struct.Struct(">I")
DEFAULT_MAX_PDU = 64 * 1024


class FrameError(ValueError):
    """A command_length the framer refuses (below 16 or above the maximum).

    ``length`` is the refused value; ``header`` holds the first 16 octets when
    they arrived, so the refusal can name the sequence number.
    """

    def __init__(self, length: int, maximum: int, header: bytes) -> None:
        super().__init__(f"command_length {length} outside {HEADER_LENGTH}..{maximum}")
        self.length = length
        self.header = header


def split_frames(
    buf: bytes, max_length: int = DEFAULT_MAX_PDU
) -> tuple[list[bytes], bytes]:
    """Cut ``buf`` into whole frames; return them and the incomplete rest.

    Raises FrameError at the first frame whose command_length is below 16 or
    above ``max_length``; frames before it are lost to the caller, so callers
    that must answer them feed frames one by one (see ``FrameSplitter``).
    """
    frames: list[bytes] = []
    pos = 0
    end = len(buf)
    unpack = _LEN.unpack_from
    while end - pos >= 4:
        (length,) = unpack(buf, pos)
        if length < HEADER_LENGTH or length > max_length:
            raise FrameError(length, max_length, buf[pos : pos + HEADER_LENGTH])
        if end - pos < length:
            break
        frames.append(buf[pos : pos + length])
        pos += length
    return frames, buf[pos:]


class FrameSplitter:
    """Incremental framer: feed bytes, get whole frames, keep the rest.

    ``error`` is set (and no more frames are returned) once a bad length is
    seen; frames that preceded it in the same feed are still returned.
    """

    __slots__ = ("_buf", "error", "max_length")

    def __init__(self, max_length: int = DEFAULT_MAX_PDU) -> None:
        self._buf = b""
        self.max_length = max_length
        self.error: FrameError | None = None

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the frames it completes, in order."""
        if self.error is not None:
            return []
        buf = self._buf + data if self._buf else data
        frames: list[bytes] = []
        pos = 0
        end = len(buf)
        unpack = _LEN.unpack_from
        maximum = self.max_length
        while end - pos >= 4:
            (length,) = unpack(buf, pos)
            if length < HEADER_LENGTH or length > maximum:
                self.error = FrameError(length, maximum, buf[pos : pos + HEADER_LENGTH])
                self._buf = b""
                return frames
            if end - pos < length:
                break
            frames.append(buf[pos : pos + length])
            pos += length
        self._buf = buf[pos:] if pos else buf
        return frames

    @property
    def buffered(self) -> int:
        """Octets held waiting for the rest of a frame."""
        return len(self._buf)
