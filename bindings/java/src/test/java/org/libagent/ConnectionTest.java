package org.libagent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import org.libagent.MembershipMessage.Reason;

/** The binding against one real agentd ("d1", Unix socket) shared by the tests of this class. */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class ConnectionTest {
  private static AgentDaemon daemon;
  private static final AtomicInteger counter = new AtomicInteger();

  @BeforeAll
  static void startDaemon() throws Exception {
    daemon = AgentDaemon.start("d1");
  }

  @AfterAll
  static void stopDaemon() {
    if (daemon != null) daemon.close();
  }

  /** A fresh private name (at most 10 characters) or group name, unique in this run. */
  private static String unique(String prefix) {
    return prefix + counter.incrementAndGet();
  }

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  private static AgentConnection connect(String prefix) {
    return daemon.connect(unique(prefix));
  }

  @Test
  void connectGivesPrivateGroupDaemonNameAndLimit() {
    String name = unique("a");
    try (AgentConnection c = daemon.connect(name)) {
      assertEquals("#" + name + "#d1", c.privateGroup());
      assertEquals("d1", c.daemonName());
      assertEquals(16 << 20, c.maxMessage());
      assertFalse(c.isClosed());
    }
  }

  @Test
  void daemonGeneratesNameWhenNull() {
    try (AgentConnection a = AgentConnection.connect(daemon.socketPath(), null);
        AgentConnection b = AgentConnection.connect(daemon.socketPath(), null)) {
      assertTrue(Names.isPrivateGroup(a.privateGroup()), a.privateGroup());
      assertTrue(a.privateGroup().endsWith("#d1"));
      assertFalse(a.privateGroup().equals(b.privateGroup()));
    }
  }

  @Test
  void joinLeaveDisconnectAreSeenByAnotherMember() {
    String g = unique("g");
    try (AgentConnection a = connect("a")) {
      AgentConnection b = connect("b");
      try {
        MembershipMessage own = Wait.join(a, g);
        assertEquals(List.of(a.privateGroup()), own.members());
        assertEquals(List.of(List.of(a.privateGroup())), own.vsSets());
        assertTrue(own.regular());
        assertFalse(own.transitional());

        MembershipMessage bJoin = Wait.join(b, g);
        MembershipMessage seen = Wait.membership(a, g, Reason.JOIN);
        assertEquals(b.privateGroup(), seen.changed());
        List<String> both = new ArrayList<>(List.of(a.privateGroup(), b.privateGroup()));
        Collections.sort(both);
        assertEquals(both, seen.members());
        assertEquals(List.of(List.of(b.privateGroup())), seen.vsSets());
        assertEquals(seen.viewConfig(), bJoin.viewConfig()); // the same view id at every member
        assertEquals(seen.viewSeq(), bJoin.viewSeq());
        assertTrue(seen.viewSeq() > own.viewSeq());

        b.leave(g);
        MembershipMessage left = Wait.membership(a, g, Reason.LEAVE);
        assertEquals(b.privateGroup(), left.changed());
        assertEquals(List.of(a.privateGroup()), left.members());
        assertFalse(left.selfLeave());
        MembershipMessage self = Wait.membership(b, g, Reason.LEAVE);
        assertTrue(self.selfLeave());
        assertFalse(self.regular());
        assertEquals(List.of(), self.members());
        assertEquals(b.privateGroup(), self.changed());
        assertEquals(left.viewSeq(), self.viewSeq());

        Wait.join(b, g);
        Wait.membership(a, g, Reason.JOIN);
      } finally {
        b.close();
      }
      MembershipMessage gone = Wait.membership(a, g, Reason.DISCONNECT);
      assertEquals(b.privateGroup(), gone.changed());
      assertEquals(List.of(a.privateGroup()), gone.members());
      assertEquals(MembershipMessage.REG_MEMB_MESS | MembershipMessage.CAUSED_BY_DISCONNECT,
          gone.serviceFlags());
    }
  }

  @Test
  void multicastToSeveralGroupsIsDeliveredOnce() {
    String g1 = unique("g");
    String g2 = unique("g");
    String g3 = unique("g");
    try (AgentConnection r = connect("r"); AgentConnection r3 = connect("r");
        AgentConnection s = connect("s")) {
      Wait.join(r, g1);
      Wait.join(r, g2);
      Wait.join(r3, g3);
      s.multicast(Service.AGREED, List.of(g1, g2, g3), (short) 7, bytes("once"), false);
      s.multicast(Service.AGREED, g1, bytes("marker"));

      DataMessage first = Wait.data(r);
      assertEquals("once", first.text());
      assertEquals(List.of(g1, g2, g3), first.groups());
      assertEquals(s.privateGroup(), first.sender());
      assertEquals((short) 7, first.msgType());
      assertEquals(Service.AGREED, first.service());
      assertEquals("marker", Wait.data(r).text()); // no second copy in between

      assertEquals("once", Wait.data(r3).text());
      Wait.quiet(r3, 200);
      Wait.quiet(s, 100); // not a member of any of the groups
    }
  }

  @Test
  void multicastManySendsEveryMessageInOrder() {
    String g = unique("g");
    try (AgentConnection r = connect("r"); AgentConnection s = connect("s")) {
      Wait.join(r, g);
      List<byte[]> msgs = new java.util.ArrayList<>();
      for (int i = 0; i < 300; i++) {
        byte[] m = new byte[i == 150 ? 200_000 : 1000]; // one larger than the send buffer
        m[0] = (byte) i;
        m[m.length - 1] = (byte) (i * 7);
        msgs.add(m);
      }
      s.multicastMany(Service.FIFO, List.of(g), (short) 4, msgs);
      for (int i = 0; i < 300; i++) {
        DataMessage d = Wait.data(r);
        assertArrayEquals(msgs.get(i), d.data());
        assertEquals(Service.FIFO, d.service());
        assertEquals((short) 4, d.msgType());
      }
      // A message above the limit: nothing at all is sent.
      assertThrows(MessageTooLargeException.class, () -> s.multicastMany(Service.AGREED, g,
          List.of(bytes("fine"), new byte[s.maxMessage() + 1])));
      Wait.quiet(r, 200);
    }
  }

  @Test
  void privateMessageReachesOnlyItsAddressee() {
    try (AgentConnection a = connect("a"); AgentConnection b = connect("b");
        AgentConnection c = connect("c")) {
      a.sendPrivate(b.privateGroup(), Service.FIFO, (short) -3, bytes("psst"));
      DataMessage m = Wait.data(b);
      assertEquals("psst", m.text());
      assertEquals(a.privateGroup(), m.sender());
      assertEquals(List.of(b.privateGroup()), m.groups());
      assertEquals(Service.FIFO, m.service());
      assertEquals((short) -3, m.msgType());
      Wait.quiet(a, 200);
      Wait.quiet(c, 50);
    }
  }

  @Test
  void selfDiscardSkipsTheSendersCopy() {
    String g = unique("g");
    try (AgentConnection a = connect("a"); AgentConnection b = connect("b")) {
      Wait.join(a, g);
      Wait.join(b, g);
      a.multicast(Service.RELIABLE, List.of(g), (short) 0, bytes("x"), true);
      a.multicast(Service.RELIABLE, g, bytes("y"));
      DataMessage atB = Wait.data(b);
      assertTrue(atB.selfDiscard());
      assertEquals(Service.RELIABLE.bits() | Service.SELF_DISCARD, atB.serviceFlags());
      assertEquals("y", Wait.data(a).text());
    }
  }

  @Test
  void totalOrderIsTheSameAtTwoReceiversWithTwoConcurrentSenders() throws Exception {
    final int perSender = 400;
    String g = unique("g");
    try (AgentConnection r1 = connect("r"); AgentConnection r2 = connect("r");
        AgentConnection s1 = connect("s"); AgentConnection s2 = connect("s")) {
      Wait.join(r1, g);
      Wait.join(r2, g);
      Wait.membership(r1, g, Reason.JOIN); // r2's join, seen by r1
      CountDownLatch go = new CountDownLatch(1);
      AtomicReference<Throwable> failure = new AtomicReference<>();
      List<Thread> senders = new ArrayList<>();
      for (AgentConnection s : List.of(s1, s2)) {
        Thread t = new Thread(() -> {
          try {
            go.await();
            for (int i = 0; i < perSender; ++i) {
              s.multicast(Service.AGREED, g, bytes(s.privateGroup() + " " + i));
            }
          } catch (Throwable e) {
            failure.set(e);
          }
        });
        t.start();
        senders.add(t);
      }
      go.countDown();
      List<String> at1 = collect(r1, 2 * perSender);
      List<String> at2 = collect(r2, 2 * perSender);
      for (Thread t : senders) t.join(10_000);
      assertNull(failure.get());
      assertEquals(at1, at2);
      for (AgentConnection s : List.of(s1, s2)) { // each sender's messages in its order
        int next = 0;
        for (String m : at1) {
          if (m.startsWith(s.privateGroup() + " ")) {
            assertEquals(s.privateGroup() + " " + next++, m);
          }
        }
        assertEquals(perSender, next);
      }
    }
  }

  private static List<String> collect(AgentConnection c, int n) {
    List<String> out = new ArrayList<>();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
    while (out.size() < n) {
      assertTrue(System.nanoTime() - deadline < 0, "only " + out.size() + " of " + n);
      Message m = c.receive(Duration.ofSeconds(1));
      if (m instanceof DataMessage d) out.add(d.text());
    }
    return out;
  }

  @Test
  void listenerReceivesDataMembershipAndClose() throws Exception {
    String g = unique("g");
    BlockingQueue<Object> events = new LinkedBlockingQueue<>();
    AgentConnection l = connect("l");
    Thread t = l.startListening(new AgentListener() {
      @Override
      public void onData(DataMessage m) {
        events.add(m);
      }

      @Override
      public void onMembership(MembershipMessage m) {
        events.add(m);
      }

      @Override
      public void onError(ErrorMessage m) {
        events.add(m);
      }

      @Override
      public void onClosed(Exception cause) {
        events.add(cause == null ? "closed" : cause);
      }
    });
    assertTrue(t.isDaemon());
    assertThrows(IllegalStateException.class, () -> l.receive(Duration.ZERO));
    assertThrows(IllegalStateException.class, () -> l.startListening(new AgentListener() {}));
    l.join(g); // sending while the listener receives
    MembershipMessage own = (MembershipMessage) next(events);
    assertEquals(l.privateGroup(), own.changed());
    try (AgentConnection o = connect("o")) {
      Wait.join(o, g);
      MembershipMessage joined = (MembershipMessage) next(events);
      assertEquals(o.privateGroup(), joined.changed());
      assertEquals(Reason.JOIN, joined.reason());
      o.multicast(Service.SAFE, g, bytes("to the listener"));
      DataMessage d = (DataMessage) next(events);
      assertEquals("to the listener", d.text());
      assertEquals(Service.SAFE, d.service());
      l.join(g);
      assertEquals(8, ((ErrorMessage) next(events)).code());
    }
    MembershipMessage gone = (MembershipMessage) next(events);
    assertEquals(Reason.DISCONNECT, gone.reason());
    l.close();
    assertEquals("closed", next(events));
    t.join(5_000);
    assertFalse(t.isAlive());
  }

  @Test
  void stopListeningHandsReceivingBack() throws Exception {
    String g = unique("g");
    try (AgentConnection l = connect("l")) {
      BlockingQueue<Message> got = new LinkedBlockingQueue<>();
      Thread t = l.startListening(new AgentListener() {
        @Override
        public void onMembership(MembershipMessage m) {
          got.add(m);
        }
      });
      l.join(g);
      assertNotNull(got.poll(10, TimeUnit.SECONDS));
      l.stopListening();
      assertFalse(t.isAlive());
      l.multicast(Service.AGREED, g, bytes("after"));
      assertEquals("after", Wait.data(l).text());
    }
  }

  @Test
  void listenerSeesTheDaemonGoAway() throws Exception {
    try (AgentDaemon d = AgentDaemon.start("d9")) {
      AgentConnection c = d.connect("x");
      BlockingQueue<Object> events = new LinkedBlockingQueue<>();
      c.startListening(new AgentListener() {
        @Override
        public void onError(ErrorMessage m) {
          events.add(m);
        }

        @Override
        public void onClosed(Exception cause) {
          events.add(cause == null ? "null cause" : cause);
        }
      });
      assertEquals(0, d.stop());
      ErrorMessage e = (ErrorMessage) next(events);
      assertEquals(ErrorCode.SHUTTING_DOWN, e.errorCode());
      assertInstanceOf(ConnectionClosedException.class, next(events));
      assertTrue(c.isClosed());
      assertThrows(ConnectionClosedException.class, () -> c.join("g"));
      c.close();
    }
  }

  private static Object next(BlockingQueue<?> q) throws InterruptedException {
    Object o = q.poll(10, TimeUnit.SECONDS);
    assertNotNull(o, "no event within 10 s");
    return o;
  }

  @Test
  void illegalNamesGroupsServicesAndSizesRaiseBeforeSending() {
    String sock = daemon.socketPath();
    for (String bad : new String[] {"", "eleven_char", "a#b", "sp ace", "tab\t", "é"}) {
      IllegalNameException e = assertThrows(IllegalNameException.class,
          () -> AgentConnection.connect(sock, bad), bad);
      assertEquals(0, e.errorCode());
    }
    try (AgentConnection c = connect("v")) {
      String longGroup = "g".repeat(32);
      for (String bad : new String[] {"", "#x", "a b", longGroup, "g#1", "\u00e9t\u00e9"}) {
        assertThrows(IllegalGroupException.class, () -> c.join(bad), bad);
        assertThrows(IllegalGroupException.class, () -> c.leave(bad), bad);
        assertThrows(IllegalGroupException.class,
            () -> c.multicast(Service.AGREED, bad, new byte[1]), bad);
      }
      assertThrows(IllegalGroupException.class, () -> c.join(null));
      assertThrows(IllegalGroupException.class, () -> c.join(c.privateGroup()));
      assertThrows(IllegalGroupException.class,
          () -> c.sendPrivate("public", Service.AGREED, new byte[1]));
      assertThrows(IllegalGroupException.class,
          () -> c.sendPrivate("#toolongname#d1", Service.AGREED, new byte[1]));
      assertThrows(BadGroupCountException.class,
          () -> c.multicast(Service.AGREED, List.of(), (short) 0, new byte[1], false));
      List<String> many = new ArrayList<>();
      for (int i = 0; i < 257; ++i) many.add("g" + i);
      assertThrows(BadGroupCountException.class,
          () -> c.multicast(Service.AGREED, many, (short) 0, new byte[1], false));
      assertThrows(IllegalServiceException.class,
          () -> c.multicast((Service) null, "g", new byte[1]));
      for (int flags : new int[] {0, 0x40, 0x03, 0x30, 0x80, 0x1010}) {
        assertThrows(IllegalServiceException.class,
            () -> c.multicast(flags, List.of("g"), (short) 0, new byte[1]), "" + flags);
      }
      assertThrows(MessageTooLargeException.class,
          () -> c.multicast(Service.AGREED, "g", new byte[c.maxMessage() + 1]));
      // Nothing reached the daemon: the connection is still fine and got no error.
      c.multicast(Service.SAFE.bits(), List.of("g", c.privateGroup()), (short) 0, bytes("ok"));
      assertEquals("ok", Wait.data(c).text());
      Wait.quiet(c, 100);
    }
  }

  @Test
  void nameTakenAndVersionMismatchComeFromTheDaemon() {
    String name = unique("n");
    try (AgentConnection first = daemon.connect(name)) {
      NameTakenException e = assertThrows(NameTakenException.class, () -> daemon.connect(name));
      assertEquals(6, e.errorCode());
      assertFalse(first.isClosed());
    }
    VersionMismatchException v = assertThrows(VersionMismatchException.class,
        () -> AgentConnection.connect(daemon.socketPath(), "v", 1, Protocol.MAGIC, 2,
            Duration.ofSeconds(5)));
    assertEquals(4, v.errorCode());
    assertThrows(VersionMismatchException.class,
        () -> AgentConnection.connect(daemon.socketPath(), "v", 1, 0x12345678, 1,
            Duration.ofSeconds(5)));
  }

  @Test
  void joiningTwiceAndLeavingAStrangeGroupProduceErrorFrames() {
    String g = unique("g");
    try (AgentConnection c = connect("e")) {
      Wait.join(c, g);
      c.join(g);
      ErrorMessage e = Wait.error(c);
      assertEquals(8, e.code());
      assertEquals(ErrorCode.ALREADY_MEMBER, e.errorCode());
      assertEquals(g, e.subject());
      assertFalse(e.text().isEmpty());
      c.leave(g + "x");
      ErrorMessage e2 = Wait.error(c);
      assertEquals(ErrorCode.NOT_MEMBER, e2.errorCode());
      assertEquals(g + "x", e2.subject());
      // still usable
      c.multicast(Service.AGREED, g, bytes("fine"));
      assertEquals("fine", Wait.data(c).text());
    }
  }

  @Test
  void autoCloseSendsByeAndThePeerSeesTheDisconnect() {
    String g = unique("g");
    try (AgentConnection a = connect("a")) {
      Wait.join(a, g);
      AgentConnection escaped;
      try (AgentConnection b = connect("b")) {
        Wait.join(b, g);
        Wait.membership(a, g, Reason.JOIN);
        escaped = b;
      }
      MembershipMessage m = Wait.membership(a, g, Reason.DISCONNECT);
      assertEquals(escaped.privateGroup(), m.changed());
      assertEquals(List.of(a.privateGroup()), m.members());
      assertTrue(escaped.isClosed());
      assertThrows(ConnectionClosedException.class, () -> escaped.join(g));
      assertThrows(ConnectionClosedException.class,
          () -> escaped.multicast(Service.AGREED, g, new byte[0]));
      assertThrows(ConnectionClosedException.class, () -> escaped.receive(Duration.ZERO));
      escaped.close(); // idempotent
    }
  }

  @Test
  void closeWakesABlockedReceiver() throws Exception {
    AgentConnection c = connect("w");
    AtomicReference<Throwable> got = new AtomicReference<>();
    Thread t = new Thread(() -> {
      try {
        c.receive();
      } catch (Throwable e) {
        got.set(e);
      }
    });
    t.start();
    Thread.sleep(100);
    c.close();
    t.join(5_000);
    assertFalse(t.isAlive());
    assertInstanceOf(ConnectionClosedException.class, got.get());
  }

  @Test
  void receiveTimesOutWithNullAndInterruptDoesNotClose() {
    try (AgentConnection c = connect("t")) {
      long start = System.nanoTime();
      assertNull(c.receive(Duration.ofMillis(200)));
      long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
      assertTrue(ms >= 190 && ms < 5_000, ms + " ms");
      assertNull(c.receive(Duration.ZERO));
      Thread.currentThread().interrupt();
      assertNull(c.receive(Duration.ofSeconds(5)));
      assertTrue(Thread.interrupted()); // status kept, and cleared here
      assertFalse(c.isClosed());
      c.sendPrivate(c.privateGroup(), Service.AGREED, bytes("me"));
      assertEquals("me", Wait.data(c).text());
    }
  }

  @Test
  void withoutMembershipOnlyDataArrives() {
    String g = unique("g");
    try (AgentConnection c = AgentConnection.connect(daemon.socketPath(), unique("m"), false,
        Duration.ofSeconds(5))) {
      c.join(g);
      c.multicast(Service.AGREED, g, bytes("first")); // ordered after the join
      Message m = Wait.until(c, x -> true);
      assertInstanceOf(DataMessage.class, m);
      assertEquals("first", ((DataMessage) m).text());
    }
  }

  @Test
  void largeMessagesRoundTrip() {
    String g = unique("g");
    try (AgentConnection a = connect("a"); AgentConnection b = connect("b")) {
      Wait.join(b, g);
      byte[] big = new byte[3 << 20];
      for (int i = 0; i < big.length; ++i) big[i] = (byte) (i * 31 + 7);
      byte[] max = new byte[a.maxMessage()];
      max[max.length - 1] = 42;
      a.multicast(Service.RELIABLE, g, big);
      a.multicast(Service.RELIABLE, g, max);
      a.multicast(Service.RELIABLE, g, new byte[0]);
      assertArrayEquals(big, Wait.data(b).data());
      assertArrayEquals(max, Wait.data(b).data());
      assertEquals(0, Wait.data(b).data().length);
    }
  }

  @Test
  void connectFailsCleanlyWhenNoDaemonListens() {
    ConnectFailedException e = assertThrows(ConnectFailedException.class,
        () -> AgentConnection.connect(daemon.dir.resolve("nothing.sock").toString(), "x"));
    assertNotNull(e.getCause());
    assertThrows(ConnectFailedException.class, () -> AgentConnection.connect("99999", "x"));
  }
}
