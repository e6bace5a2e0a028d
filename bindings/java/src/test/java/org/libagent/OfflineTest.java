package org.libagent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Address parsing, name rules and the codec, without a daemon. */
class OfflineTest {
  @Test
  void daemonAddressForms() {
    assertEquals(new DaemonAddress("/tmp/x.sock", null, 0), DaemonAddress.parse("/tmp/x.sock"));
    assertEquals(new DaemonAddress("./rel/s", null, 0), DaemonAddress.parse("./rel/s"));
    assertEquals(new DaemonAddress("plain.sock", null, 0), DaemonAddress.parse("plain.sock"));
    assertEquals(new DaemonAddress(null, "127.0.0.1", 4803), DaemonAddress.parse("4803"));
    assertEquals(new DaemonAddress(null, "example.org", 4803),
        DaemonAddress.parse("example.org:4803"));
    assertEquals(new DaemonAddress(null, "10.0.0.1", 4803), DaemonAddress.parse("4803@10.0.0.1"));
    assertEquals(new DaemonAddress(null, "127.0.0.1", 4803), DaemonAddress.parse("4803@"));
    assertEquals(new DaemonAddress(null, "::1", 4803), DaemonAddress.parse("[::1]:4803"));
    assertEquals("[::1]:4803", DaemonAddress.parse("[::1]:4803").toString());
    for (String bad : new String[] {"", "host:", "host:0", "host:65536", "x@host", "[::1]",
        "host:12a"}) {
      assertThrows(IllegalArgumentException.class, () -> DaemonAddress.parse(bad), bad);
    }
  }

  @Test
  void nameRules() {
    assertTrue(Names.isValidPrivateName("a"));
    assertTrue(Names.isValidPrivateName("0123456789"));
    assertFalse(Names.isValidPrivateName("01234567890"));
    assertFalse(Names.isValidPrivateName("a#"));
    assertFalse(Names.isValidPrivateName(null));
    assertTrue(Names.isValidGroup("~!\"$%&'()*+,-./:;<=>?@[\\]^_`{|}"));
    assertTrue(Names.isValidGroup("g".repeat(31)));
    assertFalse(Names.isValidGroup("g".repeat(32)));
    assertFalse(Names.isValidGroup("a\u007f"));
    assertTrue(Names.isPrivateGroup("#a#d"));
    assertTrue(Names.isPrivateGroup("#0123456789#" + "d".repeat(19)));
    assertFalse(Names.isPrivateGroup("#0123456789#" + "d".repeat(20))); // 32 bytes
    assertFalse(Names.isPrivateGroup("#a#"));
    assertFalse(Names.isPrivateGroup("##d"));
    assertFalse(Names.isPrivateGroup("#a#b#c"));
    assertTrue(Names.isValidDestination("#a#d"));
    assertFalse(Names.isValidDestination("#a"));
    assertTrue(Names.explainGroup("a b").contains("forbidden"));
  }

  @Test
  void services() {
    assertEquals(0x10, Service.AGREED.bits());
    assertEquals(Service.SAFE, Service.fromFlags(0x31));
    assertNull(Service.fromFlags(0x40));
    assertTrue(Service.isValidMulticast(0x01 | 0x40));
    assertFalse(Service.isValidMulticast(0x03));
    assertFalse(Service.isValidMulticast(0x100 | 0x10));
    assertEquals(ErrorCode.TOO_MANY_CLIENTS, ErrorCode.fromCode(16));
    assertNull(ErrorCode.fromCode(99));
  }

  private static byte[] frame(java.util.function.Consumer<ByteBuffer> put) {
    ByteBuffer b = Protocol.newBuffer(1024, false);
    put.accept(b);
    b.flip();
    byte[] out = new byte[b.remaining()];
    b.get(out);
    return out;
  }

  private static byte[] hex(String s) {
    s = s.replace(" ", "");
    byte[] out = new byte[s.length() / 2];
    for (int i = 0; i < out.length; ++i) {
      out[i] = (byte) Integer.parseInt(s.substring(2 * i, 2 * i + 2), 16);
    }
    return out;
  }

  @Test
  void encodersMatchTheSpec() {
    assertArrayEquals(hex("0b000000 01 41474e54 0100 03 02 6162"),
        frame(b -> Protocol.putHello(b, Protocol.MAGIC, 1, 3, "ab")));
    assertArrayEquals(hex("03000000 02 01 67"), frame(b -> Protocol.putGroupRequest(b, 2, "g")));
    assertArrayEquals(hex("01000000 05"), frame(Protocol::putBye));
    byte[] mc = frame(b -> {
      Protocol.putMulticastHeader(b, 0x50, (short) -2, List.of("a", "bc"), 3);
      b.put(new byte[] {9, 8, 7});
    });
    assertArrayEquals(hex("15000000 04 50000000 feff 0200 0161 026263 03000000 090807"), mc);
    assertArrayEquals(hex("14000000 06 0167 03 0500000000000000 ffffffffffffffff"),
        frame(b -> Protocol.putHistory(b, "g", 3, 5, -1)));
  }

  @Test
  void positionsCompareRingFirstAsUnsignedNumbers() {
    Position a = new Position(1, 99);
    Position b = new Position(2, 0);
    Position big = new Position(-1, 0); // ring 2^64 - 1
    assertTrue(a.compareTo(b) < 0);
    assertTrue(b.isAfter(a));
    assertTrue(big.isAfter(b));
    assertTrue(new Position(2, -1).isAfter(new Position(2, 1)));
    assertEquals(0, new Position(2, 0).compareTo(b));
    assertEquals(List.of(Position.START, a, b, big),
        java.util.stream.Stream.of(big, b, Position.START, a).sorted().toList());
    assertEquals("(18446744073709551615, 0)", big.toString());
    assertEquals(ErrorCode.NOT_PERSISTENT, ErrorCode.fromCode(17));
    assertEquals(ErrorCode.LOG_FAILED, ErrorCode.fromCode(18));
  }

  @Test
  void aWelcomeAbove16MiBIsMalformed() {
    String head = "0100 022367 026431 ";
    for (String ok : List.of("01000000", "00000001")) { // 1 and 16 MiB
      byte[] w = hex(head + ok);
      assertEquals("#g", Protocol.decodeWelcome(w, 0, w.length).privateGroup());
    }
    byte[] max = hex(head + "00000001");
    assertEquals(16 << 20, Protocol.decodeWelcome(max, 0, max.length).maxMessage());
    for (String bad : List.of("00000000", "01000001", "ffffffff")) { // 0, 16 MiB + 1, 2^32 - 1
      byte[] w = hex(head + bad);
      ProtocolException e = assertThrows(ProtocolException.class,
          () -> Protocol.decodeWelcome(w, 0, w.length));
      assertTrue(e.getMessage().contains("max_message_bytes"), e.getMessage());
    }
  }

  @Test
  void decodersReadTheSpecAndRejectMalformedBodies() {
    byte[] data = hex("50000000 fdff 02 2361 0100 0167 02000000 6869");
    DataMessage d = Protocol.decodeData(data, 0, data.length);
    assertEquals(Service.AGREED, d.service());
    assertTrue(d.selfDiscard());
    assertEquals((short) -3, d.msgType());
    assertEquals("#a", d.sender());
    assertEquals(List.of("g"), d.groups());
    assertEquals("hi", d.text());
    byte[] trailing = Arrays.copyOf(data, data.length + 1);
    assertThrows(ProtocolException.class, () -> Protocol.decodeData(trailing, 0, trailing.length));
    assertThrows(ProtocolException.class, () -> Protocol.decodeData(data, 0, data.length - 1));

    byte[] memb = hex("00110000 0167 0100000000000100 0500000000000000 0200 0161 0162"
        + " 0162 0100 0100 0162");
    MembershipMessage m = Protocol.decodeMembership(memb, 0, memb.length);
    assertEquals("g", m.group());
    assertEquals(0x0001000000000001L, m.viewConfig());
    assertEquals(5, m.viewSeq());
    assertEquals(List.of("a", "b"), m.members());
    assertEquals("b", m.changed());
    assertEquals(List.of(List.of("b")), m.vsSets());
    assertEquals(MembershipMessage.Reason.JOIN, m.reason());
    assertTrue(m.regular());
    assertFalse(m.selfLeave());

    byte[] self = hex("00020000 0167 0000000000000000 0000000000000000 0000 0162 0100 0100 0162");
    assertTrue(Protocol.decodeMembership(self, 0, self.length).selfLeave());

    byte[] err = hex("0800 0167 05000000 68c3a96c6c");
    ErrorMessage e = Protocol.decodeError(err, 0, err.length);
    assertEquals(ErrorCode.ALREADY_MEMBER, e.errorCode());
    assertEquals("g", e.subject());
    assertEquals("h\u00e9ll", e.text());

    byte[] positioned = hex("0700000000000000 0500000000000080 50000000 fdff 02 2361 0100 0167"
        + " 02000000 6869");
    DataMessage pd = Protocol.decodePositionedData(positioned, 0, positioned.length);
    assertEquals(new Position(7, 0x8000000000000005L), pd.position());
    assertEquals("hi", pd.text());
    assertEquals(pd, Protocol.decode(Protocol.POSITIONED_DATA, positioned, 0, positioned.length));
    assertNull(d.position());
    assertThrows(ProtocolException.class,
        () -> Protocol.decodePositionedData(positioned, 0, 15));
    assertThrows(ProtocolException.class,
        () -> Protocol.decodePositionedData(positioned, 0, positioned.length - 1));

    byte[] end = hex("0167 01 0c00000000000000 0700000000000000 0900000000000000");
    HistoryEndMessage h = (HistoryEndMessage) Protocol.decode(Protocol.HISTORY_END, end, 0,
        end.length);
    assertEquals(new HistoryEndMessage("g", 12, HistoryEndMessage.GAP, new Position(7, 9)), h);
    assertTrue(h.gap());
    assertFalse(h.failed());
    byte[] endTrailing = Arrays.copyOf(end, end.length + 1);
    assertThrows(ProtocolException.class,
        () -> Protocol.decodeHistoryEnd(endTrailing, 0, endTrailing.length));
    assertThrows(ProtocolException.class, () -> Protocol.decodeHistoryEnd(end, 0, end.length - 1));

    byte[] huge = hex("0100 00 ffffff7f");
    assertThrows(ProtocolException.class, () -> Protocol.decodeError(huge, 0, huge.length));
    byte[] bigCount = hex("10000000 0000 00 ffff");
    assertThrows(ProtocolException.class, () -> Protocol.decodeData(bigCount, 0, bigCount.length));
  }
}
