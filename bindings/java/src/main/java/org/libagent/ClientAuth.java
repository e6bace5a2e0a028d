package org.libagent;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

/** The response to a daemon's challenge (docs/client-protocol.md, "Authentication"). */
final class ClientAuth {
  static final byte[] LABEL = "libagent client auth v1".getBytes(StandardCharsets.US_ASCII);
  static final int CLIENT_TO_DAEMON = 1;
  static final int METHOD_SECRET = 1;
  static final int NONCE_BYTES = 32;

  private ClientAuth() {}

  /**
   * HMAC-SHA256(secret, LABEL | 0x01 | nonce | u32 len(hello body) | hello body | str8 name).
   */
  static byte[] response(byte[] secret, byte[] nonce, byte[] helloBody, String name) {
    byte[] n = name.getBytes(StandardCharsets.US_ASCII);
    ByteBuffer t = ByteBuffer.allocate(LABEL.length + 1 + nonce.length + 4 + helloBody.length
        + 1 + n.length).order(ByteOrder.LITTLE_ENDIAN);
    t.put(LABEL).put((byte) CLIENT_TO_DAEMON).put(nonce).putInt(helloBody.length).put(helloBody)
        .put((byte) n.length).put(n);
    try {
      Mac mac = Mac.getInstance("HmacSHA256");
      mac.init(new SecretKeySpec(secret, "HmacSHA256"));
      return mac.doFinal(t.array());
    } catch (GeneralSecurityException e) {
      throw new IllegalStateException("HmacSHA256 is not available", e);
    }
  }

  /** The challenge's nonce (its body a[from, to)). */
  static byte[] decodeChallenge(byte[] a, int from, int to) {
    if (to - from != 2 + NONCE_BYTES || a[from] != METHOD_SECRET || a[from + 1] != NONCE_BYTES) {
      throw new ProtocolException("the daemon's challenge does not decode");
    }
    byte[] nonce = new byte[NONCE_BYTES];
    System.arraycopy(a, from + 2, nonce, 0, NONCE_BYTES);
    return nonce;
  }

  /** Appends the auth frame: u8 method, str8 name, str8 mac. */
  static void putAuth(ByteBuffer b, String name, byte[] mac) {
    byte[] n = name.getBytes(StandardCharsets.US_ASCII);
    b.putInt(1 + 1 + 1 + n.length + 1 + mac.length);
    b.put((byte) Protocol.AUTH);
    b.put((byte) METHOD_SECRET);
    b.put((byte) n.length).put(n);
    b.put((byte) mac.length).put(mac);
  }
}
