package org.libagent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The message log through a real agentd ("d1") that logs the groups log.*: history, the
 * hand-over from history to live messages, positions, resuming, refusals. Each test uses groups
 * of its own.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class HistoryTest {
  static final String PERSIST = "[persist]\ngroups = [\"log.*\"]\n";

  private static AgentDaemon daemon;
  private static final AtomicInteger counter = new AtomicInteger();

  @BeforeAll
  static void startDaemon() throws Exception {
    daemon = AgentDaemon.start("d1", PERSIST);
  }

  @AfterAll
  static void stopDaemon() {
    if (daemon != null) daemon.close();
  }

  private static String unique(String prefix) {
    return prefix + counter.incrementAndGet();
  }

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  private static List<byte[]> numbered(String prefix, int from, int to) {
    List<byte[]> v = new ArrayList<>();
    for (int i = from; i < to; ++i) v.add(bytes(prefix + i));
    return v;
  }

  private static List<String> texts(String prefix, int from, int to) {
    List<String> v = new ArrayList<>();
    for (int i = from; i < to; ++i) v.add(prefix + i);
    return v;
  }

  /** A history's entries and its end. */
  record History(List<DataMessage> entries, HistoryEndMessage end) {
    List<String> texts() {
      return entries.stream().map(DataMessage::text).toList();
    }
  }

  /** Reads a history's entries and its end; anything else in between fails the test. */
  static History readHistory(AgentConnection c) {
    List<DataMessage> entries = new ArrayList<>();
    for (;;) {
      Message m = c.receive(Wait.WAIT);
      assertNotNull(m, "no history end within " + Wait.WAIT + "; entries so far " + entries.size());
      if (m instanceof HistoryEndMessage end) return new History(entries, end);
      entries.add(assertInstanceOf(DataMessage.class, m));
    }
  }

  /**
   * Waits (bounded) until the daemon's log holds n entries of group: the log is written apart
   * from delivery, so ask for the history again until it does.
   */
  static History awaitLogged(String group, int n) throws InterruptedException {
    long deadline = System.nanoTime() + Wait.WAIT.toNanos();
    for (;;) {
      History h;
      try (AgentConnection probe =
          AgentConnection.connect(daemon.socketPath(), null, false, Wait.WAIT)) {
        probe.history(group);
        h = readHistory(probe);
      }
      if (h.entries().size() >= n) return h;
      if (System.nanoTime() - deadline > 0) {
        fail("the log holds " + h.entries().size() + " entries of " + group + ", not " + n);
      }
      Thread.sleep(20); // a bounded poll of the log, not a synchronisation
    }
  }

  @Test
  void aLateJoinerGetsHistoryThenItsViewThenLiveMessages() throws Exception {
    String g = unique("log.a");
    try (AgentConnection a = AgentConnection.connect(daemon.socketPath(), unique("a"), false,
        Wait.WAIT)) {
      a.multicastMany(Service.AGREED, g, numbered("m", 0, 50));
      awaitLogged(g, 50);
      try (AgentConnection b = daemon.connect(unique("b"))) {
        assertFalse(b.positions());
        b.history(g, null, true);
        History h = readHistory(b);
        assertEquals(texts("m", 0, 50), h.texts());
        for (int i = 1; i < h.entries().size(); ++i) {
          assertTrue(h.entries().get(i).position().isAfter(h.entries().get(i - 1).position()));
        }
        assertEquals(g, h.end().group());
        assertEquals(50, h.end().count());
        assertEquals(0, h.end().flags());
        assertFalse(h.end().gap());
        assertFalse(h.end().failed());
        assertEquals(h.entries().get(49).position(), h.end().position());
        // Then its own join...
        MembershipMessage view = assertInstanceOf(MembershipMessage.class, b.receive(Wait.WAIT));
        assertEquals(MembershipMessage.Reason.JOIN, view.reason());
        assertEquals(List.of(b.privateGroup()), view.members());
        // ...and what comes after it, live (without a position: b did not ask for them).
        a.multicast(Service.AGREED, g, bytes("live"));
        DataMessage live = assertInstanceOf(DataMessage.class, b.receive(Wait.WAIT));
        assertEquals("live", live.text());
        assertNull(live.position());
      }
    }
  }

  @Test
  void joiningWithHistoryUnderASteadyStreamMissesAndRepeatsNothing() throws Exception {
    String g = unique("log.s");
    AtomicBoolean stop = new AtomicBoolean();
    AtomicReference<Throwable> failure = new AtomicReference<>();
    try (AgentConnection a = AgentConnection.connect(daemon.socketPath(), unique("a"), false,
        Wait.WAIT)) {
      Thread sender = new Thread(() -> {
        try {
          for (int i = 0; !stop.get() && i < 200_000; i += 32) {
            List<byte[]> batch = new ArrayList<>(32);
            for (int j = i; j < i + 32; ++j) batch.add(bytes(Integer.toString(j)));
            a.multicastMany(Service.AGREED, g, batch);
            Thread.sleep(1); // pacing: a steady stream, not a flood
          }
        } catch (Throwable t) {
          failure.set(t);
        }
      }, "history-test sender");
      sender.setDaemon(true);
      sender.start();
      List<Integer> got = new ArrayList<>();
      int history;
      try {
        awaitLogged(g, 1000); // enough of it is history
        try (AgentConnection b = daemon.connect(unique("b"))) {
          b.history(g, null, true);
          History h = readHistory(b);
          MembershipMessage view = assertInstanceOf(MembershipMessage.class, b.receive(Wait.WAIT));
          assertEquals(MembershipMessage.Reason.JOIN, view.reason());
          for (DataMessage m : h.entries()) got.add(Integer.parseInt(m.text()));
          history = got.size();
          assertEquals(history, h.end().count());
          while (got.size() < history + 1000) {
            DataMessage d = assertInstanceOf(DataMessage.class, b.receive(Wait.WAIT));
            got.add(Integer.parseInt(d.text()));
          }
        }
      } finally {
        stop.set(true);
        sender.join(Wait.WAIT.toMillis());
      }
      assertNull(failure.get());
      assertTrue(history >= 1000, "history " + history);
      // Live messages continue exactly where the history ended: 0, 1, 2, ... without a hole.
      for (int i = 0; i < got.size(); ++i) {
        if (got.get(i) != i) {
          fail("at " + i + " (history " + history + "): " + got.subList(Math.max(0, i - 3),
              Math.min(got.size(), i + 3)));
        }
      }
    }
  }

  @Test
  void historyAfterAPositionResumesThereAndSinceATimeStartsThere() throws Exception {
    String g = unique("log.r");
    History first;
    Instant between;
    try (AgentConnection a = AgentConnection.connect(daemon.socketPath(), unique("a"), false,
        Wait.WAIT)) {
      a.multicastMany(Service.AGREED, g, numbered("first", 0, 20));
      first = awaitLogged(g, 20);
      between = Instant.now(); // after every first* was delivered (microsecond precision)
      a.multicastMany(Service.AGREED, g, numbered("second", 0, 10));
      awaitLogged(g, 30);
    }
    try (AgentConnection b = AgentConnection.connect(daemon.socketPath(), unique("b"), false,
        Wait.WAIT)) {
      b.history(g, first.entries().get(9).position(), false);
      History h = readHistory(b);
      List<String> expect = texts("first", 10, 20);
      expect.addAll(texts("second", 0, 10));
      assertEquals(expect, h.texts());
      assertEquals(20, h.end().count());

      b.historySince(g, between, false);
      assertEquals(texts("second", 0, 10), readHistory(b).texts());
      // From the end: nothing, and the end says where it stands.
      b.history(g, h.end().position(), false);
      History none = readHistory(b);
      assertTrue(none.entries().isEmpty());
      assertEquals(0, none.end().count());
      assertEquals(h.end().position(), none.end().position());
      // From the start, explicitly.
      b.history(g, Position.START, false);
      assertEquals(30, readHistory(b).end().count());
    }
  }

  @Test
  void historyOfAGroupWithoutALogIsRefusedWithError17() {
    try (AgentConnection b = daemon.connect(unique("b"))) {
      // Checked before anything is sent: private groups have no log.
      assertThrows(IllegalGroupException.class, () -> b.history(b.privateGroup()));
      assertThrows(IllegalGroupException.class,
          () -> b.historySince("bad group", Instant.now(), false));
      assertThrows(IllegalArgumentException.class,
          () -> b.historySince("log.x", Instant.ofEpochSecond(-1), false));
      b.history("plain");
      ErrorMessage e = assertInstanceOf(ErrorMessage.class, b.receive(Wait.WAIT));
      assertEquals(17, e.code());
      assertEquals(ErrorCode.NOT_PERSISTENT, e.errorCode());
      assertEquals("plain", e.subject());
      assertTrue(e.text().contains("keeps no log of group plain"), e.text());
      // The connection goes on: a persistent group's (empty) history follows.
      String g = unique("log.e");
      b.history(g);
      History h = readHistory(b);
      assertTrue(h.entries().isEmpty());
      assertEquals(g, h.end().group());
    }
  }

  @Test
  void liveMessagesCarryPositionsWhenAskedAndTheyAgreeWithTheLog() throws Exception {
    String g = unique("log.p");
    try (AgentConnection p = AgentConnection.connect(daemon.socketPath(), unique("p"), true, true,
        Wait.WAIT);
        AgentConnection a = daemon.connect(unique("a"))) {
      assertTrue(p.positions());
      Wait.join(p, g);
      a.multicastMany(Service.AGREED, g, numbered("p", 0, 3));
      List<DataMessage> live = new ArrayList<>();
      for (int i = 0; i < 3; ++i) live.add(Wait.data(p));
      History logged = awaitLogged(g, 3);
      for (int i = 0; i < 3; ++i) {
        assertNotNull(live.get(i).position());
        assertEquals(logged.entries().get(i).position(), live.get(i).position());
        assertEquals(logged.entries().get(i), live.get(i));
      }
    }
  }

  @Test
  void aListenerGetsTheEntriesThenTheEnd() throws Exception {
    String g = unique("log.l");
    try (AgentConnection a = AgentConnection.connect(daemon.socketPath(), unique("a"), false,
        Wait.WAIT);
        AgentConnection l = AgentConnection.connect(daemon.socketPath(), unique("l"), false,
            Wait.WAIT)) {
      a.multicastMany(Service.AGREED, g, numbered("x", 0, 3));
      awaitLogged(g, 3);
      BlockingQueue<Object> events = new LinkedBlockingQueue<>();
      l.startListening(new AgentListener() {
        @Override
        public void onData(DataMessage m) {
          events.add(m.text());
        }

        @Override
        public void onHistoryEnd(HistoryEndMessage m) {
          events.add(m);
        }
      });
      l.history(g);
      for (String want : texts("x", 0, 3)) {
        assertEquals(want, events.poll(Wait.WAIT.toMillis(), TimeUnit.MILLISECONDS));
      }
      HistoryEndMessage end = assertInstanceOf(HistoryEndMessage.class,
          events.poll(Wait.WAIT.toMillis(), TimeUnit.MILLISECONDS));
      assertEquals(3, end.count());
      l.stopListening();
    }
  }
}
