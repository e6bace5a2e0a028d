package org.libagent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HexFormat;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** TCP clients that authenticate with a name and secret of the daemon's secrets file. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class AuthTest {
  static final String ALICE = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
  static final String BOB = "bob-secret-0123456789abcdef";
  private static AgentDaemon daemon;

  @BeforeAll
  static void startDaemon() throws Exception {
    daemon = AgentDaemon.start("dauth", true, null, true,
        "# test clients\nalice " + ALICE + "\nbob " + BOB + "\n");
  }

  @AfterAll
  static void stopDaemon() {
    if (daemon != null) daemon.close();
  }

  private static AgentConnection connect(String name, Credentials c) {
    return AgentConnection.connect(daemon.tcpAddress(), name, true, false,
        Duration.ofSeconds(5), c);
  }

  @Test
  void responseMatchesTheDocumentedTranscript() {
    // The vector the C++ unit test and the Python binding check too.
    ByteBuffer hello = ByteBuffer.allocate(13).order(ByteOrder.LITTLE_ENDIAN);
    hello.putInt(0x544E4741).putShort((short) 1).put((byte) 1).put((byte) 5)
        .put("alice".getBytes(StandardCharsets.US_ASCII));
    byte[] nonce = new byte[32];
    for (int i = 0; i < 32; ++i) nonce[i] = (byte) i;
    byte[] mac = ClientAuth.response("0123456789abcdef0123456789abcdef"
        .getBytes(StandardCharsets.US_ASCII), nonce, hello.array(), "alice");
    assertEquals("be3c007d911ae898b42f545a1dc887541d0ba5c5bdd3e6ef72ea7591801e74e6",
        HexFormat.of().formatHex(mac));
  }

  @Test
  void authenticatedTcpClientExchangesMessages() {
    try (AgentConnection t = connect("jtcp", new Credentials("alice", ALICE));
        AgentConnection u = daemon.connect("junix")) {
      assertEquals("#jtcp#dauth", t.privateGroup());
      Wait.join(u, "chat");
      Wait.join(t, "chat");
      t.multicast(Service.AGREED, "chat", "from java".getBytes(StandardCharsets.UTF_8));
      DataMessage d = Wait.data(u);
      assertEquals("from java", d.text());
      assertEquals(t.privateGroup(), d.sender());
    }
    assertTrue(daemon.log().contains("client #jtcp#dauth connected (tcpuser alice)"));
  }

  @Test
  void wrongSecretIsRefused() {
    AuthFailedException e = assertThrows(AuthFailedException.class,
        () -> connect("jbad", new Credentials("alice", BOB)));
    assertEquals(20, e.errorCode());
    assertEquals(ErrorCode.AUTH_FAILED, ErrorCode.fromCode(20));
    assertThrows(AuthFailedException.class,
        () -> connect("jbad", new Credentials("carol", ALICE)));
    assertThrows(IllegalArgumentException.class, () -> new Credentials("alice", "short"));
  }
}
