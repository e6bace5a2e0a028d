"""Client protocol version 1 (docs/client-protocol.md): frame encoders and decoders.

Every frame is ``u32 length | u8 verb | body``, little-endian, ``length`` counting verb + body.
``str8`` = u8 length + bytes, ``bytes32`` = u32 length + bytes, ``names`` = u16 count + str8s.
This module has no I/O: the sync and asyncio connections share it.
"""

from __future__ import annotations

import struct
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

from . import names as _names
from .errors import (BadGroupCount, IllegalService, MessageTooLarge, ProtocolError)
from .messages import (SELF_DISCARD, DataMessage, HistoryEndMessage, Position, make_error,
                       make_membership)

MAGIC = 0x544E4741  # "AGNT" as a little-endian u32
VERSION = 1
HEADER_BYTES = 5
FRAME_OVERHEAD = 64 * 1024  # room around the largest payload in a frame
MAX_GROUPS_PER_MESSAGE = 256
MAX_MESSAGE_BYTES = 16 << 20  # the largest max_message_bytes a welcome may announce
# A sanity bound on frames from the daemon. Not max_message + FRAME_OVERHEAD: a membership
# frame of a large group (up to 65535 members, twice with vs-sets) may pass that when the
# daemon's max_message is small; the protocol bounds only client -> daemon frames.
MAX_INCOMING_FRAME = MAX_MESSAGE_BYTES + FRAME_OVERHEAD + 2 * 65535 * 256

# Client -> daemon verbs.
HELLO, JOIN, LEAVE, MULTICAST, BYE, HISTORY = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
# Daemon -> client verbs.
WELCOME, DATA, MEMBERSHIP, ERROR = 0x81, 0x82, 0x83, 0x84
POSITIONED_DATA, HISTORY_END = 0x85, 0x86

HELLO_WANT_MEMBERSHIP = 0x01
HELLO_GENERATE_NAME = 0x02
HELLO_POSITIONS = 0x04      # data frames carry their position (POSITIONED_DATA)

HISTORY_JOIN = 0x01         # history flags: also join the group
HISTORY_SINCE = 0x02        # a is a time (unix microseconds), not a position
_U64_MAX = (1 << 64) - 1

_U32 = struct.Struct("<I")
_HDR = struct.Struct("<IB")
_HELLO = struct.Struct("<IBIHB")      # length, verb, magic, version, flags
_MCAST = struct.Struct("<IBIhH")      # length, verb, service, msg_type, group count
_DATA_HEAD = struct.Struct("<IhB")    # service, msg_type, sender length
_MEMB_HEAD = struct.Struct("<QQ")     # view config, view seq
_POSITION = struct.Struct("<QQ")      # ring, ordinal
_HISTORY_TAIL = struct.Struct("<BQQ")  # flags, a, b
_HISTORY_END_TAIL = struct.Struct("<BQQQ")  # flags, count, ring, ordinal


class Welcome(NamedTuple):
    version: int
    private_group: str
    daemon: str
    max_message: int


# --------------------------------------------------------------------------------- encoders

def _str8(s: str) -> bytes:
    b = s.encode("ascii")
    return bytes((len(b),)) + b


def encode_hello(name: str, flags: int, version: int = VERSION, magic: int = MAGIC) -> bytes:
    n = name.encode("ascii")
    body_len = 1 + 4 + 2 + 1 + 1 + len(n)
    return _HELLO.pack(body_len, HELLO, magic, version, flags) + bytes((len(n),)) + n


def _group_request(verb: int, group: str) -> bytes:
    g = _str8(group)
    return _HDR.pack(1 + len(g), verb) + g


def encode_join(group: str) -> bytes:
    return _group_request(JOIN, group)


def encode_leave(group: str) -> bytes:
    return _group_request(LEAVE, group)


def encode_bye() -> bytes:
    return _HDR.pack(1, BYE)


def encode_history(group: str, flags: int, a: int, b: int) -> bytes:
    g = _str8(group)
    return _HDR.pack(1 + len(g) + _HISTORY_TAIL.size, HISTORY) + g + _HISTORY_TAIL.pack(flags, a, b)


def build_history(group, after, join: bool) -> bytes:
    """Validates history()'s arguments and returns its frame. after: None (from the oldest
    kept), a Position or a (ring, ordinal) pair."""
    _names.check_group(group)
    if after is None:
        ring, ordinal = 0, 0
    else:
        try:
            ring, ordinal = after
        except (TypeError, ValueError):
            raise TypeError("after must be None, an agent.Position or a (ring, ordinal) pair, "
                            "not %r" % (after,)) from None
        for v in (ring, ordinal):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= _U64_MAX:
                raise ValueError("a position holds two unsigned 64-bit ints, not %r" % (after,))
    return encode_history(group, HISTORY_JOIN if join else 0, ring, ordinal)


def build_history_since(group, unix_ms, join: bool) -> bytes:
    """Validates history_since()'s arguments and returns its frame (unix_ms: milliseconds since
    1970, an int or a float)."""
    _names.check_group(group)
    if isinstance(unix_ms, bool) or not isinstance(unix_ms, (int, float)):
        raise TypeError("unix_ms must be milliseconds since 1970 (an int or float), not %r"
                        % (unix_ms,))
    try:
        since_us = int(unix_ms * 1000)
    except (ValueError, OverflowError):  # nan, inf
        since_us = -1
    if not 0 <= since_us <= _U64_MAX:
        raise ValueError("unix_ms %r is out of range (0 .. 2**64 microseconds)" % (unix_ms,))
    flags = HISTORY_SINCE | (HISTORY_JOIN if join else 0)
    return encode_history(group, flags, since_us, 0)


def encode_multicast(service: int, msg_type: int, groups: Sequence[str],
                     payload: Union[bytes, bytearray, memoryview]) -> bytes:
    g = b"".join(_str8(x) for x in groups)
    plen = len(payload)
    body_len = 1 + 4 + 2 + 2 + len(g) + 4 + plen
    return b"".join((_MCAST.pack(body_len, MULTICAST, service, msg_type, len(groups)), g,
                     _U32.pack(plen), payload))


def check_service(service: object, self_discard: bool = False) -> int:
    """The service bits to send: exactly one regular service, optionally SELF_DISCARD."""
    if service.__class__ is not int:
        if isinstance(service, bool) or not isinstance(service, int):
            raise IllegalService("service must be an int such as agent.AGREED, not %s"
                                 % type(service).__name__)
        service = int(service)
    if self_discard:
        service |= SELF_DISCARD
    if service in _VALID_SERVICES:
        return service
    raise IllegalService(
        "service 0x%x: use exactly one of UNRELIABLE, RELIABLE, FIFO, CAUSAL, AGREED, SAFE, "
        "optionally with SELF_DISCARD" % service)


_VALID_SERVICES = frozenset([1 << i for i in range(6)]
                            + [(1 << i) | SELF_DISCARD for i in range(6)])


_dest_cache = {}  # valid destination -> its str8 encoding (the few groups an app uses)


def _encoded_destination(group) -> bytes:
    try:
        return _dest_cache[group]
    except (KeyError, TypeError):
        pass
    _names.check_destination(group)
    enc = _str8(group)
    if len(_dest_cache) >= 4096:
        _dest_cache.clear()
    _dest_cache[group] = enc
    return enc


def build_multicast(groups, data, service, msg_type, self_discard, max_message) -> bytes:
    """Validates a multicast's arguments and returns its frame."""
    if isinstance(groups, str):
        encoded = _encoded_destination(groups)
        count = 1
    elif isinstance(groups, (bytes, bytearray)):
        raise TypeError("group names are str, not bytes")
    else:
        try:
            groups = list(groups)
        except TypeError:
            raise TypeError("groups must be a group name or an iterable of group names") from None
        count = len(groups)
        if not 1 <= count <= MAX_GROUPS_PER_MESSAGE:
            raise BadGroupCount("a multicast names 1..%d groups, not %d"
                                % (MAX_GROUPS_PER_MESSAGE, count))
        encoded = b"".join([_encoded_destination(g) for g in groups])
    svc = check_service(service, self_discard)
    if msg_type.__class__ is not int or not -32768 <= msg_type <= 32767:
        if isinstance(msg_type, bool) or not isinstance(msg_type, int) or \
                not -32768 <= msg_type <= 32767:
            raise ValueError("msg_type must be an int in -32768..32767, not %r" % (msg_type,))
    if data.__class__ is not bytes:
        if isinstance(data, str):
            raise TypeError("data must be bytes-like (encode text first, e.g. s.encode())")
        if not isinstance(data, bytearray):
            data = memoryview(data).cast("B")  # raises TypeError for non-buffers
    plen = len(data)
    if plen > max_message:
        raise MessageTooLarge("message of %d bytes is above the daemon's limit of %d bytes"
                              % (plen, max_message))
    return b"".join((_MCAST.pack(13 + len(encoded) + plen, MULTICAST, svc, msg_type, count),
                     encoded, _U32.pack(plen), data))


# --------------------------------------------------------------------------------- decoders

class _Reader:
    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf, pos: int, end: int):
        self.buf, self.pos, self.end = buf, pos, end

    def need(self, n: int) -> int:
        p = self.pos
        if p + n > self.end:
            raise ProtocolError("frame body too short")
        self.pos = p + n
        return p

    def u8(self) -> int:
        return self.buf[self.need(1)]

    def u16(self) -> int:
        p = self.need(2)
        return self.buf[p] | self.buf[p + 1] << 8

    def u32(self) -> int:
        return _U32.unpack_from(self.buf, self.need(4))[0]

    def str8(self) -> str:
        n = self.u8()
        p = self.need(n)
        return bytes(self.buf[p:p + n]).decode("ascii", "replace")

    def bytes32(self) -> bytes:
        n = self.u32()
        p = self.need(n)
        with memoryview(self.buf) as mv:
            return mv[p:p + n].tobytes()

    def names(self) -> List[str]:
        n = self.u16()
        if n > self.end - self.pos:  # every name takes at least its length byte
            raise ProtocolError("name count beyond the frame")
        return [self.str8() for _ in range(n)]

    def done(self) -> None:
        if self.pos != self.end:
            raise ProtocolError("%d trailing bytes in frame" % (self.end - self.pos))


def decode_welcome(buf, pos: int, end: int) -> Welcome:
    r = _Reader(buf, pos, end)
    w = Welcome(r.u16(), r.str8(), r.str8(), r.u32())
    r.done()
    # The client sizes its buffers by this limit, so an absurd one is refused as the C
    # library refuses it (docs/client-protocol.md, 0x81: 1 .. 16 MiB).
    if not 1 <= w.max_message <= MAX_MESSAGE_BYTES:
        raise ProtocolError("malformed welcome: max_message_bytes %d is outside 1 .. %d"
                            % (w.max_message, MAX_MESSAGE_BYTES))
    return w


def _decode_data(buf, p: int, end: int, position=None) -> DataMessage:
    # The hot path, unrolled. Slices may run past the frame into the next one; the checks
    # on p catch that before anything is returned.
    try:
        service, msg_type, n = _DATA_HEAD.unpack_from(buf, p)
        p += 7
        sender = buf[p:p + n].decode("ascii", "replace")
        p += n
        count = buf[p] | buf[p + 1] << 8
        p += 2
        if count > end - p:
            raise ProtocolError("name count beyond the frame")
        groups = []
        for _ in range(count):
            n = buf[p]
            groups.append(buf[p + 1:p + 1 + n].decode("ascii", "replace"))
            p += 1 + n
        plen = _U32.unpack_from(buf, p)[0]
        p += 4
    except (IndexError, struct.error):
        raise ProtocolError("data frame body too short") from None
    if p + plen != end:
        raise ProtocolError("data frame: payload of %d bytes does not end the frame" % plen)
    with memoryview(buf) as mv:
        payload = mv[p:end].tobytes()
    return DataMessage(sender, groups, msg_type, service, payload, position)


def decode(verb: int, buf, pos: int, end: int):
    """Decodes the body buf[pos:end] of a daemon -> client frame into a message object."""
    r = _Reader(buf, pos, end)
    if verb == DATA:
        return _decode_data(buf, pos, end)
    if verb == POSITIONED_DATA:
        ring, ordinal = _POSITION.unpack_from(buf, r.need(16))
        return _decode_data(buf, r.pos, end, Position(ring, ordinal))
    if verb == HISTORY_END:
        group = r.str8()
        flags, count, ring, ordinal = _HISTORY_END_TAIL.unpack_from(buf, r.need(25))
        r.done()
        return HistoryEndMessage(group, count, flags, Position(ring, ordinal))
    if verb == MEMBERSHIP:
        service = r.u32()
        group = r.str8()
        config, seq = _MEMB_HEAD.unpack_from(buf, r.need(16))
        members = r.names()
        changed = r.str8()
        nsets = r.u16()
        if nsets > (r.end - r.pos) // 2 + 1:
            raise ProtocolError("vs-set count beyond the frame")
        vs_sets = [r.names() for _ in range(nsets)]
        r.done()
        return make_membership(service, group, config, seq, members, changed, vs_sets)
    if verb == ERROR:
        code = r.u16()
        subject = r.str8()
        text = r.bytes32().decode("utf-8", "replace")
        r.done()
        return make_error(code, subject, text)
    if verb == WELCOME:
        raise ProtocolError("unexpected second welcome")
    raise ProtocolError("unknown verb 0x%02x from the daemon" % verb)


class FrameBuffer:
    """Splits the daemon's byte stream into frames."""

    __slots__ = ("buf", "pos", "max_frame")

    def __init__(self, max_frame: int):
        self.buf = bytearray()
        self.pos = 0
        self.max_frame = max_frame

    def feed(self, data) -> None:
        if self.pos:
            if self.pos == len(self.buf):
                self.buf.clear()
                self.pos = 0
            elif self.pos > (1 << 20) and self.pos * 2 > len(self.buf):
                del self.buf[:self.pos]
                self.pos = 0
        self.buf += data

    def next(self) -> Optional[Tuple[int, int, int]]:
        """(verb, body start, body end) of the next complete frame, or None. The offsets index
        self.buf and stay valid until the next feed()."""
        buf, pos = self.buf, self.pos
        if len(buf) - pos < 4:
            return None
        length = _U32.unpack_from(buf, pos)[0]
        if length == 0 or length > self.max_frame:
            raise ProtocolError("the daemon sent a frame of %d bytes (limit %d)"
                                % (length, self.max_frame))
        if len(buf) - pos - 4 < length:
            return None
        self.pos = pos + 4 + length
        return buf[pos + 4], pos + 5, pos + 4 + length

    def complete_frames(self) -> int:
        """How many complete frames are buffered."""
        n, pos, buf = 0, self.pos, self.buf
        while len(buf) - pos >= 4:
            length = _U32.unpack_from(buf, pos)[0]
            if len(buf) - pos - 4 < length or length == 0:
                break
            n += 1
            pos += 4 + length
        return n
