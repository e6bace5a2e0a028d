import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashSet;
import java.util.Set;
import org.libagent.AgentConnection;
import org.libagent.DataMessage;
import org.libagent.MembershipMessage;
import org.libagent.Message;

/**
 * The Java receiver of the cross-language test (cross_language.py): joins a group and logs every
 * view and data message, one line each, in the format of cross_receiver.py, until it has seen
 * "END A" and "END B". Exits 2 if that takes longer than the given number of seconds.
 *
 * <pre>java -cp agent-java.jar:agent-cross-receiver.jar CrossReceiver DAEMON NAME GROUP LOG SECONDS</pre>
 */
public final class CrossReceiver {
  public static void main(String[] args) throws Exception {
    String daemon = args[0], name = args[1], group = args[2];
    Path logFile = Path.of(args[3]);
    long deadline = System.nanoTime() + Duration.ofSeconds(Long.parseLong(args[4])).toNanos();
    Set<String> ends = new HashSet<>();
    try (AgentConnection c = AgentConnection.connect(daemon, name);
         PrintWriter log = new PrintWriter(Files.newBufferedWriter(logFile), true)) {
      c.join(group);
      while (ends.size() < 2) {
        long left = deadline - System.nanoTime();
        if (left <= 0) {
          log.println("TIMEOUT");
          System.exit(2);
        }
        Message m = c.receive(Duration.ofNanos(left));
        if (m instanceof MembershipMessage v) {
          log.println(String.format("VIEW %s %04x %s.%s %s %s", v.group(), v.serviceFlags(),
              Long.toUnsignedString(v.viewConfig()), Long.toUnsignedString(v.viewSeq()),
              v.changed().isEmpty() ? "-" : v.changed(),
              v.members().isEmpty() ? "-" : String.join(",", v.members())));
        } else if (m instanceof DataMessage d) {
          log.println(String.format("DATA %s %d %04x %s %s", d.sender(), d.msgType(),
              d.serviceFlags(), String.join(",", d.groups()), d.text()));
          if (d.text().startsWith("END ")) ends.add(d.text());
        } else if (m != null) {
          log.println("OTHER " + m);
        }
      }
    }
  }
}
