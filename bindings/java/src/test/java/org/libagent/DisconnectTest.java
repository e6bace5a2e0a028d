package org.libagent;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * close() loses nothing: every multicast a send accepted reaches the daemon, also over TCP with
 * deliveries the client never read (closing with unread bytes would make the kernel reset the
 * connection, and the daemon lose what it had not read yet).
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class DisconnectTest {
  private static final int N = 3000;

  // d1 pauses reading its clients early (a small ring queue), so what a fast sender wrote is
  // still in d1's socket when it closes; the receiver sits on d2.
  private static String config(int id, int[] ports, Path key) {
    StringBuilder s = new StringBuilder("[clients]\nmax_message_bytes = 32768\n[ring]\nid = " + id
        + "\ntoken_loss_ms = 2000\nconsensus_timeout_ms = 500\nmax_pending_bytes = 65536\n"
        + "key_file = \"" + key + "\"\n");
    for (int i = 0; i < ports.length; ++i) {
      s.append("[[ring.daemons]]\nid = ").append(i + 1).append("\naddress = \"127.0.0.1\"\nport = ")
          .append(ports[i]).append('\n');
    }
    return s.toString();
  }

  // The ring's cluster key, as `agentd keygen` writes it: 32 random bytes, mode 0600.
  private static Path clusterKey() throws IOException {
    Path dir = Files.createTempDirectory("agent-java-key-");
    Path key = Files.createFile(dir.resolve("ring.key"),
        PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
    byte[] bytes = new byte[32];
    new SecureRandom().nextBytes(bytes);
    Files.write(key, bytes);
    key.toFile().deleteOnExit();
    dir.toFile().deleteOnExit();
    return key;
  }

  private static int freeUdpPort() throws IOException {
    try (DatagramSocket s = new DatagramSocket(0, InetAddress.getByName("127.0.0.1"))) {
      return s.getLocalPort();
    }
  }

  @Test
  void closeOverTcpLosesNothing() throws Exception {
    int[] ports = {freeUdpPort(), freeUdpPort()};
    Path key = clusterKey();
    try (AgentDaemon d1 = AgentDaemon.start("d1", true, config(1, ports, key), false);
        AgentDaemon d2 = AgentDaemon.start("d2", false, config(2, ports, key), false)) {
      d1.waitReady();
      d2.waitReady();
      try (AgentConnection rx = d2.connect("rx")) {
        Wait.join(rx, "g");
        AgentConnection tx = AgentConnection.connect(d1.tcpAddress(), "tx");
        tx.join("g"); // its own messages come back and fill its socket, unread
        Wait.membership(rx, "g", MembershipMessage.Reason.JOIN);
        List<byte[]> batch = new ArrayList<>();
        for (int i = 0; i < N; ++i) batch.add(new byte[1024]);
        tx.multicastMany(Service.AGREED, "g", batch); // written at once: d1 falls behind
        tx.close();
        int got = 0;
        for (;;) {
          Message m = rx.receive(Duration.ofSeconds(20));
          if (m == null) break;
          if (m instanceof DataMessage) ++got;
          if (m instanceof MembershipMessage v && v.reason() == MembershipMessage.Reason.DISCONNECT) {
            break;
          }
        }
        assertEquals(N, got);
      }
    }
  }
}
