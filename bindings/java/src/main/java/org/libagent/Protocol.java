package org.libagent;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

/**
 * The client protocol, version 1 (docs/client-protocol.md): frame encoders and decoders. Every
 * frame is {@code u32 length | u8 verb | body}, little-endian, length counting verb and body.
 * Names are ASCII (checked by {@link Names} before encoding) and decoded byte for byte
 * (ISO-8859-1), so a name the daemon sends comes back unchanged; error text is UTF-8.
 */
final class Protocol {
  static final int MAGIC = 0x544E4741; // "AGNT" read as a little-endian u32
  static final int VERSION = 1;
  static final int HEADER_BYTES = 5; // u32 length + u8 verb
  static final int MAX_GROUPS = 256;
  static final int DEFAULT_MAX_MESSAGE = 16 << 20;
  static final int MAX_MESSAGE = 16 << 20; // the largest max_message_bytes a welcome may announce
  static final int FRAME_OVERHEAD = 64 * 1024; // a frame's fields around the largest payload

  static final int HELLO = 0x01;
  static final int JOIN = 0x02;
  static final int LEAVE = 0x03;
  static final int MULTICAST = 0x04;
  static final int BYE = 0x05;
  static final int HISTORY = 0x06;
  static final int AUTH = 0x07; // the answer to a challenge (ClientAuth)
  static final int WELCOME = 0x81;
  static final int DATA = 0x82;
  static final int MEMBERSHIP = 0x83;
  static final int ERROR = 0x84;
  static final int POSITIONED_DATA = 0x85;
  static final int HISTORY_END = 0x86;
  static final int CHALLENGE = 0x87; // the daemon asks a TCP client to authenticate

  static final int HELLO_WANT_MEMBERSHIP = 0x01;
  static final int HELLO_GENERATE_NAME = 0x02;
  static final int HELLO_POSITIONS = 0x04; // data frames carry their position

  static final int HISTORY_JOIN = 0x01; // history flags: also join the group
  static final int HISTORY_SINCE = 0x02; // a is a time (unix microseconds), not a position

  private Protocol() {}

  // ---- encoders: each writes one whole frame at the buffer's position (order little-endian)

  static ByteBuffer newBuffer(int capacity, boolean direct) {
    ByteBuffer b = direct ? ByteBuffer.allocateDirect(capacity) : ByteBuffer.allocate(capacity);
    return b.order(ByteOrder.LITTLE_ENDIAN);
  }

  static int str8Size(String s) {
    return 1 + s.length();
  }

  private static void putStr8(ByteBuffer b, String s) {
    b.put((byte) s.length());
    for (int i = 0; i < s.length(); ++i) b.put((byte) s.charAt(i));
  }

  static void putHello(ByteBuffer b, int magic, int version, int flags, String name) {
    b.putInt(1 + 4 + 2 + 1 + str8Size(name));
    b.put((byte) HELLO);
    b.putInt(magic);
    b.putShort((short) version);
    b.put((byte) flags);
    putStr8(b, name);
  }

  /** Join or leave. */
  static void putGroupRequest(ByteBuffer b, int verb, String group) {
    b.putInt(1 + str8Size(group));
    b.put((byte) verb);
    putStr8(b, group);
  }

  /** History: str8 group, u8 flags, u64 a, u64 b (a position, or a time with HISTORY_SINCE). */
  static void putHistory(ByteBuffer b, String group, int flags, long a, long b2) {
    b.putInt(1 + str8Size(group) + 1 + 8 + 8);
    b.put((byte) HISTORY);
    putStr8(b, group);
    b.put((byte) flags);
    b.putLong(a);
    b.putLong(b2);
  }

  static void putBye(ByteBuffer b) {
    b.putInt(1);
    b.put((byte) BYE);
  }

  /** Bytes of a multicast frame before its payload. */
  static int multicastHeaderSize(Collection<String> groups) {
    int n = HEADER_BYTES + 4 + 2 + 2 + 4;
    for (String g : groups) n += str8Size(g);
    return n;
  }

  /** A multicast frame up to and including the payload's length; the payload follows. */
  static void putMulticastHeader(ByteBuffer b, int service, short msgType,
      Collection<String> groups, int payloadLength) {
    int header = multicastHeaderSize(groups);
    b.putInt(header - 4 + payloadLength);
    b.put((byte) MULTICAST);
    b.putInt(service);
    b.putShort(msgType);
    b.putShort((short) groups.size());
    for (String g : groups) putStr8(b, g);
    b.putInt(payloadLength);
  }

  // ---- decoders

  /** The welcome's fields. */
  record Welcome(int version, String privateGroup, String daemon, int maxMessage) {}

  /** Reads one body; every getter throws ProtocolException past the end. */
  static final class Reader {
    private final byte[] a;
    private int pos;
    private final int end;
    private final String what;

    Reader(byte[] a, int from, int to, String what) {
      this.a = a;
      this.pos = from;
      this.end = to;
      this.what = what;
    }

    private void need(int n) {
      if (n < 0 || end - pos < n) {
        throw new ProtocolException("malformed " + what + " frame from agentd: it ends early");
      }
    }

    int u8() {
      need(1);
      return a[pos++] & 0xff;
    }

    int u16() {
      need(2);
      int v = (a[pos] & 0xff) | (a[pos + 1] & 0xff) << 8;
      pos += 2;
      return v;
    }

    short i16() {
      return (short) u16();
    }

    int i32() {
      need(4);
      int v = (a[pos] & 0xff) | (a[pos + 1] & 0xff) << 8 | (a[pos + 2] & 0xff) << 16
          | (a[pos + 3] & 0xff) << 24;
      pos += 4;
      return v;
    }

    /** A u32 that must fit a Java array (below 2^31). */
    int u32Length() {
      int v = i32();
      if (v < 0) throw new ProtocolException("malformed " + what + " frame: length above 2^31");
      return v;
    }

    long u64() {
      long lo = i32() & 0xffffffffL;
      long hi = i32() & 0xffffffffL;
      return lo | hi << 32;
    }

    String str8() {
      int n = u8();
      need(n);
      String s = new String(a, pos, n, StandardCharsets.ISO_8859_1);
      pos += n;
      return s;
    }

    byte[] bytes32() {
      int n = u32Length();
      need(n);
      byte[] b = new byte[n];
      System.arraycopy(a, pos, b, 0, n);
      pos += n;
      return b;
    }

    /** An unmodifiable list (so that the records' List.copyOf does not copy it again). */
    List<String> names() {
      int n = u16();
      if (n > end - pos) need(n); // each name takes at least one byte
      if (n == 1) return List.of(str8()); // the common case: one group
      String[] v = new String[n];
      for (int i = 0; i < n; ++i) v[i] = str8();
      return List.of(v);
    }

    void done() {
      if (pos != end) {
        throw new ProtocolException("malformed " + what + " frame from agentd: "
            + (end - pos) + " trailing bytes");
      }
    }
  }

  static Welcome decodeWelcome(byte[] a, int from, int to) {
    Reader r = new Reader(a, from, to, "welcome");
    int version = r.u16();
    String privateGroup = r.str8();
    String daemon = r.str8();
    long max = r.i32() & 0xffffffffL;
    r.done();
    // The client sizes its buffers by this limit, so an absurd one is refused as the C library
    // refuses it (docs/client-protocol.md, 0x81: 1 .. 16 MiB).
    if (max < 1 || max > MAX_MESSAGE) {
      throw new ProtocolException("malformed welcome frame from agentd: max_message_bytes "
          + max + " is outside 1 .. " + MAX_MESSAGE);
    }
    return new Welcome(version, privateGroup, daemon, (int) max);
  }

  static DataMessage decodeData(byte[] a, int from, int to) {
    return decodeData(a, from, to, null);
  }

  /** Positioned data: u64 ring, u64 ordinal, then the body of data. */
  static DataMessage decodePositionedData(byte[] a, int from, int to) {
    Reader r = new Reader(a, from, to, "positioned data");
    Position p = new Position(r.u64(), r.u64());
    return decodeData(a, r.pos, to, p);
  }

  static HistoryEndMessage decodeHistoryEnd(byte[] a, int from, int to) {
    Reader r = new Reader(a, from, to, "history end");
    String group = r.str8();
    int flags = r.u8();
    long count = r.u64();
    Position p = new Position(r.u64(), r.u64());
    r.done();
    return new HistoryEndMessage(group, count, flags, p);
  }

  private static DataMessage decodeData(byte[] a, int from, int to, Position position) {
    Reader r = new Reader(a, from, to, "data");
    int service = r.i32();
    short msgType = r.i16();
    String sender = r.str8();
    List<String> groups = r.names();
    byte[] payload = r.bytes32();
    r.done();
    Service s = Service.fromFlags(service);
    if (s == null) {
      throw new ProtocolException("data frame from agentd has no service: flags 0x"
          + Integer.toHexString(service));
    }
    return new DataMessage(sender, groups, msgType, s, payload,
        (service & Service.SELF_DISCARD) != 0, position);
  }

  static MembershipMessage decodeMembership(byte[] a, int from, int to) {
    Reader r = new Reader(a, from, to, "membership");
    int service = r.i32();
    String group = r.str8();
    long config = r.u64();
    long seq = r.u64();
    List<String> members = r.names();
    String changed = r.str8();
    int nsets = r.u16();
    if (nsets > to - from) r.need(nsets); // each set takes at least two bytes
    List<List<String>> sets = new ArrayList<>(nsets);
    for (int i = 0; i < nsets; ++i) sets.add(r.names());
    r.done();
    MembershipMessage.Reason reason = MembershipMessage.Reason.fromFlags(service);
    if (reason == null) {
      throw new ProtocolException("membership frame from agentd has no cause: flags 0x"
          + Integer.toHexString(service));
    }
    boolean transitional = (service & MembershipMessage.TRANSITION_MESS) != 0;
    boolean regular = (service & MembershipMessage.REG_MEMB_MESS) != 0;
    boolean selfLeave = !regular && !transitional && reason == MembershipMessage.Reason.LEAVE;
    return new MembershipMessage(group, members, changed, config, seq, reason, transitional,
        selfLeave, sets, service);
  }

  static ErrorMessage decodeError(byte[] a, int from, int to) {
    Reader r = new Reader(a, from, to, "error");
    int code = r.u16();
    String subject = r.str8();
    int n = r.u32Length();
    r.need(n);
    String text = new String(a, r.pos, n, StandardCharsets.UTF_8);
    r.pos += n;
    r.done();
    return new ErrorMessage(code, subject, text);
  }

  /** A data, membership, error or history-end frame as a message. */
  static Message decode(int verb, byte[] a, int from, int to) {
    switch (verb) {
      case DATA:
        return decodeData(a, from, to);
      case POSITIONED_DATA:
        return decodePositionedData(a, from, to);
      case HISTORY_END:
        return decodeHistoryEnd(a, from, to);
      case MEMBERSHIP:
        return decodeMembership(a, from, to);
      case ERROR:
        return decodeError(a, from, to);
      case WELCOME:
        throw new ProtocolException("agentd sent a second welcome");
      default:
        throw new ProtocolException("agentd sent unknown verb 0x" + Integer.toHexString(verb));
    }
  }
}
