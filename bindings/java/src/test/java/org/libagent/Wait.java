package org.libagent;

import static org.junit.jupiter.api.Assertions.fail;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;

/** Receiving with bounds, for the tests. */
final class Wait {
  /** Upper bound for anything the daemon should do "now" (sanitizer builds are slow). */
  static final Duration WAIT = Duration.ofSeconds(10);

  private Wait() {}

  /** The first message matching pred within WAIT; the others are dropped. */
  static Message until(AgentConnection c, Predicate<Message> pred) {
    long deadline = System.nanoTime() + WAIT.toNanos();
    List<Message> seen = new ArrayList<>();
    for (;;) {
      long left = deadline - System.nanoTime();
      if (left <= 0) fail("no matching message within " + WAIT + " at " + c + "; saw " + seen);
      Message m = c.receive(Duration.ofNanos(left));
      if (m == null) continue;
      if (pred.test(m)) return m;
      if (seen.size() < 20) seen.add(m);
    }
  }

  static MembershipMessage membership(AgentConnection c, String group,
      MembershipMessage.Reason reason) {
    return (MembershipMessage) until(c, m -> m instanceof MembershipMessage v
        && v.group().equals(group) && (reason == null || v.reason() == reason));
  }

  static DataMessage data(AgentConnection c) {
    return (DataMessage) until(c, m -> m instanceof DataMessage);
  }

  static ErrorMessage error(AgentConnection c) {
    return (ErrorMessage) until(c, m -> m instanceof ErrorMessage);
  }

  /** Joins and waits for the connection's own view of the group. */
  static MembershipMessage join(AgentConnection c, String group) {
    c.join(group);
    return (MembershipMessage) until(c, m -> m instanceof MembershipMessage v
        && v.group().equals(group) && v.reason() == MembershipMessage.Reason.JOIN
        && v.changed().equals(c.privateGroup()));
  }

  /** Nothing arrives within millis. */
  static void quiet(AgentConnection c, long millis) {
    Message m = c.receive(Duration.ofMillis(millis));
    if (m != null) fail("unexpected message at " + c + ": " + m);
  }
}
