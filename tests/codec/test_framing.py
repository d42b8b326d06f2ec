"""SMPP framing (smsgw.codec.framing): command_length counts its own four octets."""

from __future__ import annotations

import struct

import pytest

from smsgw.codec import pdu as P
from smsgw.codec.framing import DEFAULT_MAX_PDU, FrameError, FrameSplitter, split_frames

ENQ = P.encode(P.EnquireLink(sequence_number=1))  # exactly 16 octets
SUBMIT = P.encode(
    P.SubmitSm(sequence_number=2, destination_addr="8613800138000", short_message=b"hi")
)
RESP = P.encode(P.SubmitSmResp(sequence_number=2, message_id="abc"))


def _header(length: int, seq: int = 9) -> bytes:
    return struct.pack(">IIII", length, 0x15, 0, seq)


def feed_bytewise(splitter: FrameSplitter, data: bytes) -> list[bytes]:
    """Feed ``data`` one octet at a time and collect every frame returned."""
    return [f for i in range(len(data)) for f in splitter.feed(data[i : i + 1])]


def test_header_only_frame_of_exactly_16_is_accepted() -> None:
    """A 16-octet PDU (enquire_link) is a whole frame."""
    assert len(ENQ) == 16
    assert FrameSplitter().feed(ENQ) == [ENQ]
    assert feed_bytewise(FrameSplitter(), ENQ) == [ENQ]


@pytest.mark.parametrize("length", [0, 1, 4, 15])
def test_length_below_16_is_frame_error_with_header(length: int) -> None:
    """A command_length below 16 sets FrameError carrying the 16 header octets."""
    splitter = FrameSplitter()
    bad = _header(length, seq=77)
    assert splitter.feed(bad) == []
    assert splitter.error is not None
    assert splitter.error.length == length
    assert splitter.error.header == bad
    assert struct.unpack(">I", splitter.error.header[12:16])[0] == 77


def test_length_error_detected_as_soon_as_length_arrives() -> None:
    """The refusal needs only the four length octets; the header is what has arrived."""
    splitter = FrameSplitter()
    assert splitter.feed(b"\x00\x00\x00\x05\x00") == []
    assert splitter.error is not None
    assert splitter.error.header == b"\x00\x00\x00\x05\x00"


def test_length_above_maximum_is_frame_error() -> None:
    """A command_length above max_length is refused before the body arrives."""
    splitter = FrameSplitter(max_length=1024)
    assert splitter.feed(_header(1025)) == []
    assert splitter.error is not None
    assert splitter.error.length == 1025
    assert "1025" in str(splitter.error)


def test_length_equal_to_maximum_is_accepted() -> None:
    """A frame of exactly max_length octets passes."""
    body = b"\x00" * (100 - 16)
    frame = _header(100) + body
    splitter = FrameSplitter(max_length=100)
    assert splitter.feed(frame) == [frame]
    assert splitter.error is None


def test_default_maximum_is_64k() -> None:
    """The default limit is 64 KiB; one octet more is refused."""
    assert FrameSplitter().max_length == DEFAULT_MAX_PDU == 65536
    splitter = FrameSplitter()
    splitter.feed(_header(DEFAULT_MAX_PDU + 1))
    assert splitter.error is not None


def test_frame_split_across_feeds() -> None:
    """A frame cut anywhere, including inside the length field, comes out once whole."""
    for cut in range(1, len(SUBMIT)):
        splitter = FrameSplitter()
        assert splitter.feed(SUBMIT[:cut]) == []
        assert splitter.buffered == cut
        assert splitter.feed(SUBMIT[cut:]) == [SUBMIT]
        assert splitter.buffered == 0


def test_many_frames_in_one_feed_with_a_partial_tail() -> None:
    """Several frames in one feed come out in order; the partial rest waits."""
    splitter = FrameSplitter()
    data = ENQ + SUBMIT + RESP + ENQ + SUBMIT[:7]
    assert splitter.feed(data) == [ENQ, SUBMIT, RESP, ENQ]
    assert splitter.buffered == 7
    assert splitter.feed(SUBMIT[7:] + RESP) == [SUBMIT, RESP]
    assert splitter.buffered == 0


def test_bytewise_and_whole_feeds_agree() -> None:
    """Feeding a stream whole or one octet at a time yields the same frames."""
    data = SUBMIT + ENQ + RESP + SUBMIT
    assert FrameSplitter().feed(data) == feed_bytewise(FrameSplitter(), data)
    assert FrameSplitter().feed(data) == [SUBMIT, ENQ, RESP, SUBMIT]


def test_frames_before_a_bad_one_are_returned() -> None:
    """Frames ahead of a bad length in the same feed are still returned."""
    splitter = FrameSplitter()
    out = splitter.feed(ENQ + RESP + _header(3) + ENQ)
    assert out == [ENQ, RESP]
    assert splitter.error is not None
    assert splitter.error.length == 3


def test_after_an_error_feed_returns_nothing() -> None:
    """Once the stream is broken no more frames come out, even valid ones."""
    splitter = FrameSplitter()
    splitter.feed(_header(2))
    first = splitter.error
    assert splitter.feed(ENQ) == []
    assert splitter.feed(ENQ + ENQ) == []
    assert splitter.error is first
    assert splitter.buffered == 0


def test_empty_feed_returns_nothing() -> None:
    """An empty feed neither returns frames nor loses buffered octets."""
    splitter = FrameSplitter()
    assert splitter.feed(b"") == []
    splitter.feed(ENQ[:5])
    assert splitter.feed(b"") == []
    assert splitter.buffered == 5
    assert splitter.feed(ENQ[5:]) == [ENQ]


def test_split_frames_returns_frames_and_rest() -> None:
    """split_frames cuts a buffer into whole frames and the incomplete rest."""
    assert split_frames(ENQ + SUBMIT + RESP[:3]) == ([ENQ, SUBMIT], RESP[:3])
    assert split_frames(b"") == ([], b"")
    assert split_frames(ENQ[:15]) == ([], ENQ[:15])


def test_split_frames_raises_on_bad_length() -> None:
    """split_frames raises FrameError at a length below 16 or above the maximum."""
    with pytest.raises(FrameError) as info:
        split_frames(ENQ + _header(15))
    assert info.value.length == 15
    assert info.value.header == _header(15)
    with pytest.raises(FrameError):
        split_frames(_header(200), max_length=199)
