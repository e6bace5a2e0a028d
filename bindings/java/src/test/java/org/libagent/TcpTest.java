package org.libagent;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Connecting over TCP in each address form, talking with a Unix-socket client. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class TcpTest {
  private static AgentDaemon daemon;

  @BeforeAll
  static void startDaemon() throws Exception {
    daemon = AgentDaemon.start("dtcp", true);
  }

  @AfterAll
  static void stopDaemon() {
    if (daemon != null) daemon.close();
  }

  @Test
  void tcpClientsTalkWithAUnixClient() {
    int port = daemon.tcpPort;
    String[] forms = {"127.0.0.1:" + port, port + "@127.0.0.1", String.valueOf(port),
        "localhost:" + port};
    try (AgentConnection u = daemon.connect("unix")) {
      Wait.join(u, "g");
      int i = 0;
      for (String form : forms) {
        String name = "tcp" + i++;
        try (AgentConnection t = AgentConnection.connect(form, name)) {
          assertEquals("#" + name + "#dtcp", t.privateGroup());
          assertEquals("127.0.0.1:" + port, t.address().replace("localhost", "127.0.0.1"));
          Wait.join(t, "g");
          assertEquals(t.privateGroup(), Wait.membership(u, "g", null).changed());
          t.multicast(Service.AGREED, "g", form.getBytes(StandardCharsets.UTF_8));
          DataMessage d = Wait.data(u);
          assertEquals(form, d.text());
          assertEquals(t.privateGroup(), d.sender());
          u.sendPrivate(t.privateGroup(), Service.FIFO, "back".getBytes(StandardCharsets.UTF_8));
          DataMessage own = Wait.data(t); // ordered before the reply
          assertEquals(form, own.text());
          assertEquals(t.privateGroup(), own.sender());
          DataMessage back = Wait.data(t);
          assertEquals("back", back.text());
          assertEquals(u.privateGroup(), back.sender());

        }
        assertEquals(MembershipMessage.Reason.DISCONNECT, Wait.membership(u, "g", null).reason());
      }
    }
  }
}
