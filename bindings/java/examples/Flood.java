import java.time.Duration;
import java.util.Collections;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicLong;
import org.libagent.AgentConnection;
import org.libagent.DataMessage;
import org.libagent.Message;
import org.libagent.MembershipMessage;
import org.libagent.Service;

/**
 * Flood: sends N messages of S bytes to a group it is a member of and counts its own copies as
 * they come back through the daemon's total order; prints messages per second. The main thread
 * sends while a second thread receives on the same connection (sends and receives take
 * separate locks), with at most WINDOW (default 1000) messages in flight. -b BATCH sends BATCH
 * messages at a time with multicastMany (one write for all).
 *
 * <pre>
 * java -cp agent-java.jar:agent-java-examples.jar Flood [-d DAEMON] [-n COUNT] [-s BYTES]
 *     [-g GROUP] [-w WINDOW] [-b BATCH]
 *     [--service agreed]
 * java -cp agent-java.jar bindings/java/examples/Flood.java ...   (source-file mode)
 * </pre>
 */
public final class Flood {
  private static final String USAGE = "usage: Flood [-d DAEMON] [-n COUNT] [-s BYTES] [-g GROUP]"
      + " [-w WINDOW] [-b BATCH] [--service unreliable|reliable|fifo|causal|agreed|safe]";

  public static void main(String[] args) throws Exception {
    String daemon = null;
    String group = "flood";
    long count = 100_000;
    long window = 1000;
    int size = 1024;
    int batch = 1;
    Service service = Service.AGREED;
    for (int i = 0; i < args.length; ++i) {
      String a = args[i];
      String v = i + 1 < args.length ? args[i + 1] : null;
      switch (a) {
        case "-d", "--daemon" -> { daemon = v; ++i; }
        case "-n", "--count" -> { count = Long.parseLong(v); ++i; }
        case "-s", "--size" -> { size = Integer.parseInt(v); ++i; }
        case "-g", "--group" -> { group = v; ++i; }
        case "-w", "--window" -> { window = Long.parseLong(v); ++i; }
        case "-b", "--batch" -> { batch = Math.max(1, Integer.parseInt(v)); ++i; }
        case "--service" -> { service = Service.valueOf(v.toUpperCase()); ++i; }
        case "-h", "--help" -> {
          System.out.println(USAGE);
          return;
        }
        default -> {
          System.err.println(USAGE);
          System.exit(2);
        }
      }
    }
    try (AgentConnection c = AgentConnection.connect(daemon, null)) {
      c.join(group);
      for (;;) { // our own join: from here on our copies come back
        Message m = c.receive(Duration.ofSeconds(10));
        if (m == null) throw new IllegalStateException("no membership message for " + group);
        if (m instanceof MembershipMessage v && v.group().equals(group)
            && v.changed().equals(c.privateGroup())) {
          break;
        }
      }
      final String me = c.privateGroup();
      final long n = count;
      // At most `window` messages in flight: the daemon drops a client whose unread deliveries
      // pass its queue limit, so the sender must not outrun the reader without bound.
      Semaphore inFlight = new Semaphore((int) Math.min(window, Integer.MAX_VALUE));
      AtomicLong received = new AtomicLong();
      Thread reader = new Thread(() -> { // receives while the main thread sends
        while (received.get() < n) {
          Message m = c.receive(Duration.ofSeconds(30));
          if (m == null) {
            System.err.println("stalled: " + received.get() + " of " + n + " received");
            System.exit(1);
          }
          if (m instanceof DataMessage d && d.sender().equals(me)) {
            received.incrementAndGet();
            inFlight.release();
          }
        }
      }, "flood-reader");
      byte[] payload = new byte[size];
      long start = System.nanoTime();
      reader.start();
      for (long i = 0; i < n;) {
        int k = (int) Math.min(Math.min(batch, n - i), window);
        inFlight.acquireUninterruptibly(k);
        if (k == 1) {
          c.multicast(service, group, payload);
        } else {
          c.multicastMany(service, group, Collections.nCopies(k, payload));
        }
        i += k;
      }
      reader.join();
      long end = System.nanoTime();
      double secs = (end - start) / 1e9;
      System.out.printf("%d messages of %d bytes (%s) through %s in %.3f s: %.0f msgs/s,"
          + " %.1f MB/s%n", count, size, service, c.address(), secs, count / secs,
          count * (double) size / secs / 1e6);
    }
  }
}
