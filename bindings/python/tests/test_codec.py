"""Parts that need no daemon: names, addresses, the frame codec, argument checks."""

import os
import socket
import struct

import pytest

import agent
from agent import _address, _protocol as P, names


def test_service_constants_are_spreads():
    assert (agent.UNRELIABLE, agent.RELIABLE, agent.FIFO, agent.CAUSAL, agent.AGREED,
            agent.SAFE, agent.SELF_DISCARD) == (0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40)
    assert (agent.CAUSED_BY_JOIN, agent.CAUSED_BY_LEAVE, agent.CAUSED_BY_DISCONNECT,
            agent.CAUSED_BY_NETWORK, agent.REG_MEMB_MESS, agent.TRANSITION_MESS) == \
        (0x100, 0x200, 0x400, 0x800, 0x1000, 0x2000)
    assert agent.service_name(agent.SAFE | agent.SELF_DISCARD) == "SAFE|SELF_DISCARD"


def test_name_rules():
    assert names.valid_private_name("a") and names.valid_private_name("x" * 10)
    for bad in ["", "x" * 11, "a b", "a#b", "é", "tab\t", None, b"bytes"]:
        assert not names.valid_private_name(bad), bad
    assert names.valid_group("g" * 31) and not names.valid_group("g" * 32)
    assert not names.valid_group("#a#d1")
    assert names.is_private_group("#alice#d1")
    for bad in ["#alice", "##d1", "#a#", "#" + "a" * 11 + "#d", "#a#" + "d" * 28, "a#b#c"]:
        assert not names.is_private_group(bad), bad
    assert names.valid_destination("#a#d1") and names.valid_destination("chat")


def test_illegal_names_raise_clear_errors():
    with pytest.raises(agent.IllegalName, match="limit is 10"):
        names.check_private_name("elevenchars")
    with pytest.raises(agent.IllegalGroup, match="forbidden character"):
        names.check_group("with space")
    with pytest.raises(agent.IllegalGroup, match="private groups cannot be joined"):
        names.check_group("#a#d1")
    with pytest.raises(agent.IllegalGroup, match="must be a str"):
        names.check_group(42)
    # Argument errors are ValueErrors as well as AgentErrors.
    assert issubclass(agent.IllegalGroup, ValueError)
    assert issubclass(agent.IllegalGroup, agent.AgentError)
    assert issubclass(agent.Timeout, TimeoutError)


def test_daemon_address_forms(monkeypatch):
    parse = _address.parse
    assert parse("/tmp/x.sock") == (_address.Address("/tmp/x.sock"))
    assert parse("./rel/x.sock").unix == "./rel/x.sock"
    assert parse("4803") == _address.Address(None, "127.0.0.1", 4803)
    assert parse("4803@example.org") == _address.Address(None, "example.org", 4803)
    assert parse("localhost:4804") == _address.Address(None, "localhost", 4804)
    assert parse("[::1]:4805") == _address.Address(None, "::1", 4805)
    for bad in ["host:notaport", "0", "70000@h", "[::1]"]:
        with pytest.raises(ValueError):
            parse(bad)
    monkeypatch.setenv("AGENT_DAEMON", "1234")
    assert parse(None) == _address.Address(None, "127.0.0.1", 1234)
    monkeypatch.delenv("AGENT_DAEMON")
    assert parse(None) == _address.Address("/tmp/agentd.sock")


def test_hello_and_multicast_frames_match_the_spec():
    hello = P.encode_hello("alice", P.HELLO_WANT_MEMBERSHIP)
    # u32 length | verb 0x01 | magic "AGNT" | u16 version | u8 flags | str8 name
    assert hello == (struct.pack("<I", 1 + 4 + 2 + 1 + 6) + b"\x01" + b"AGNT" + b"\x01\x00"
                     + b"\x01" + b"\x05alice")
    assert P.encode_join("g") == b"\x03\x00\x00\x00\x02\x01g"
    assert P.encode_leave("g") == b"\x03\x00\x00\x00\x03\x01g"
    assert P.encode_bye() == b"\x01\x00\x00\x00\x05"
    m = P.build_multicast(["a", "#b#d"], b"xyz", agent.SAFE, -2, True, 100)
    body = (struct.pack("<IhH", 0x60, -2, 2) + b"\x01a" + b"\x04#b#d"
            + struct.pack("<I", 3) + b"xyz")
    assert m == struct.pack("<IB", 1 + len(body), 0x04) + body


def _frame(verb, body):
    return struct.pack("<IB", 1 + len(body), verb) + body


def _names(*ns):
    return struct.pack("<H", len(ns)) + b"".join(bytes([len(n)]) + n.encode() for n in ns)


def test_decoding_daemon_frames():
    fb = P.FrameBuffer(1 << 20)
    data = _frame(0x82, struct.pack("<Ih", 0x10, 7) + b"\x05#a#d1"
                  + _names("g1", "g2") + struct.pack("<I", 2) + b"hi")
    memb = _frame(0x83, struct.pack("<I", 0x1000 | 0x100) + b"\x01g" + struct.pack("<QQ", 3, 9)
                  + _names("#a#d1", "#b#d1") + b"\x05#b#d1" + struct.pack("<H", 1)
                  + _names("#b#d1"))
    err = _frame(0x84, struct.pack("<H", 8) + b"\x01g" + struct.pack("<I", 4) + b"oops")
    stream = data + memb + err
    # Fed one byte at a time: frames come out whole.
    out = []
    for i in range(len(stream)):
        fb.feed(stream[i:i + 1])
        f = fb.next()
        if f:
            out.append(P.decode(f[0], fb.buf, f[1], f[2]))
    d, m, e = out
    assert d == agent.DataMessage("#a#d1", ["g1", "g2"], 7, agent.AGREED, b"hi")
    assert m.members == ["#a#d1", "#b#d1"] and m.changed == "#b#d1"
    assert m.view == agent.ViewId(3, 9) and m.view == (3, 9)
    assert (m.reason, m.transitional, m.self_leave, m.regular) == ("join", False, False, True)
    assert m.vs_sets == [["#b#d1"]]
    assert (e.code, e.name, e.subject, e.text) == (agent.ErrorCode.ALREADY_MEMBER,
                                                   "already a member", "g", "oops")
    assert e.code == 8 and not e.closes


def test_malformed_frames_are_protocol_errors():
    fb = P.FrameBuffer(100)
    fb.feed(struct.pack("<I", 101))
    with pytest.raises(agent.ProtocolError):
        fb.next()
    body = struct.pack("<H", 8) + b"\x01g" + struct.pack("<I", 4) + b"oops"
    for bad in [body[:-1], body + b"!"]:  # short, trailing byte
        with pytest.raises(agent.ProtocolError):
            P.decode(0x84, bad, 0, len(bad))
    with pytest.raises(agent.ProtocolError):
        P.decode(0x99, b"", 0, 0)


def test_welcome_above_16_mib_is_malformed():
    def welcome(max_message):
        return struct.pack("<H", 1) + b"\x02#g\x02d1" + struct.pack("<I", max_message)
    for ok in (1, 16 << 20):
        assert P.decode_welcome(welcome(ok), 0, len(welcome(ok))).max_message == ok
    for bad in (0, (16 << 20) + 1, 0xFFFFFFFF):
        with pytest.raises(agent.ProtocolError, match="max_message_bytes"):
            P.decode_welcome(welcome(bad), 0, len(welcome(bad)))


def test_multicast_argument_checks():
    bm = P.build_multicast
    with pytest.raises(agent.IllegalService):
        bm("g", b"", agent.AGREED | agent.SAFE, 0, False, 10)
    with pytest.raises(agent.IllegalService):
        bm("g", b"", 0, 0, False, 10)
    with pytest.raises(agent.IllegalService):
        bm("g", b"", agent.AGREED | 0x100, 0, False, 10)
    with pytest.raises(agent.IllegalService):
        bm("g", b"", "AGREED", 0, False, 10)
    with pytest.raises(agent.BadGroupCount):
        bm([], b"", agent.AGREED, 0, False, 10)
    with pytest.raises(agent.BadGroupCount):
        bm(["g%d" % i for i in range(257)], b"", agent.AGREED, 0, False, 10)
    with pytest.raises(agent.IllegalGroup):
        bm(["ok", "not ok"], b"", agent.AGREED, 0, False, 10)
    with pytest.raises(agent.MessageTooLarge):
        bm("g", b"x" * 11, agent.AGREED, 0, False, 10)
    with pytest.raises(ValueError):
        bm("g", b"", agent.AGREED, 40000, False, 10)
    with pytest.raises(TypeError):
        bm("g", "text", agent.AGREED, 0, False, 10)
    # bytearray and memoryview are accepted as payloads.
    assert bm("g", memoryview(b"ab"), agent.AGREED, 0, False, 10).endswith(b"ab")
    assert bm("g", bytearray(b"ab"), agent.AGREED, 0, False, 10).endswith(b"ab")


def test_connect_to_nothing_raises_connect_error(scratch_dir):
    with pytest.raises(agent.ConnectError, match="cannot reach agentd"):
        agent.connect(str(scratch_dir / "none.sock"), "a", timeout=1)
    with socket.socket() as s:  # a TCP port with no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(agent.ConnectError):
        agent.connect(str(port), "a", timeout=1)


def test_handshake_timeout(scratch_dir):
    # A listener that never answers the hello.
    path = str(scratch_dir / "mute.sock")
    with socket.socket(socket.AF_UNIX) as srv:
        srv.bind(path)
        srv.listen(1)
        with pytest.raises(agent.ConnectError, match="did not answer"):
            agent.connect(path, "a", timeout=0.2)
    os.unlink(path)


def test_history_frames_match_the_spec():
    # u32 length | verb 0x06 | str8 group | u8 flags | u64 a | u64 b
    assert P.build_history("log.a", None, False) == _frame(
        0x06, b"\x05log.a" + b"\x00" + struct.pack("<QQ", 0, 0))
    assert P.build_history("g", agent.Position(3, 2 ** 64 - 1), True) == _frame(
        0x06, b"\x01g" + b"\x01" + struct.pack("<QQ", 3, 2 ** 64 - 1))
    assert P.build_history_since("g", 1500, True) == _frame(
        0x06, b"\x01g" + b"\x03" + struct.pack("<QQ", 1500000, 0))
    assert P.build_history_since("g", 1.5, False).endswith(struct.pack("<QQ", 1500, 0))
    from agent.client import hello_flags
    assert hello_flags("a", True, positions=True) == 0x01 | 0x04
    assert hello_flags(None, False) == 0x02
    for bad in [(1,), (-1, 0), (0, 2 ** 64), (1.0, 2), "ab"]:
        with pytest.raises((TypeError, ValueError)):
            P.build_history("g", bad, False)
    for bad in [-1, float("nan"), float("inf")]:
        with pytest.raises(ValueError):
            P.build_history_since("g", bad, False)
    with pytest.raises(TypeError):
        P.build_history_since("g", "yesterday", False)
    with pytest.raises(agent.IllegalGroup):
        P.build_history("#a#d1", None, False)


def test_decoding_positioned_data_and_history_ends():
    body = struct.pack("<Ih", 0x10, 0) + b"\x05#a#d1" + _names("g") + struct.pack("<I", 2) + b"hi"
    pd = _frame(0x85, struct.pack("<QQ", 7, 2 ** 63 + 5) + body)
    end = _frame(0x86, b"\x05log.a" + struct.pack("<BQQQ", 0x01, 12, 7, 9))
    fb = P.FrameBuffer(1 << 20)
    fb.feed(pd + end)
    f = fb.next()
    d = P.decode(f[0], fb.buf, f[1], f[2])
    assert d == agent.DataMessage("#a#d1", ["g"], 0, agent.AGREED, b"hi",
                                  agent.Position(7, 2 ** 63 + 5))
    assert d.position.ring == 7 and "position=(7," in repr(d)
    f = fb.next()
    e = P.decode(f[0], fb.buf, f[1], f[2])
    assert e == agent.HistoryEndMessage("log.a", 12, agent.HISTORY_GAP, agent.Position(7, 9))
    assert e.gap and not e.failed
    assert agent.HistoryEndMessage("g", 0, agent.HISTORY_FAILED, agent.Position(0, 0)).failed
    # Positions order ring first, then ordinal.
    assert agent.Position(1, 99) < agent.Position(2, 0) < agent.Position(2, 1)
    assert max([agent.Position(2, 0), agent.Position(1, 5)]) == (2, 0)
    assert agent.ErrorCode(17).name == "NOT_PERSISTENT" and agent.ErrorCode(18) == 18
    for bad_verb, bad in [(0x85, struct.pack("<QQ", 1, 2)[:15]),
                          (0x85, struct.pack("<QQ", 1, 2) + body[:-1]),
                          (0x86, b"\x01g" + struct.pack("<BQQQ", 0, 0, 0, 0)[:-1]),
                          (0x86, b"\x01g" + struct.pack("<BQQQ", 0, 0, 0, 0) + b"!")]:
        with pytest.raises(agent.ProtocolError):
            P.decode(bad_verb, bad, 0, len(bad))
